"""Forms that parse what rater pages post; the rules they feed live in the service modules.

A view calls ``form.is_valid()`` and hands ``cleaned_data`` to one service; a form that is not
valid becomes the same refusal (message and HTTP status) the service would give.
"""

from __future__ import annotations

import math

from django import forms

from . import pair_steps, sessions
from .enrolment import WORKER_ID_MAX

__all__ = ["CalibrationForm", "ConsentForm", "EnrolmentForm", "PairForm", "RatingForm"]


class EnrolmentForm(forms.Form):
    """Open enrolment. A crowd platform's parameters fill it (the GET shows it filled in)."""

    worker_id = forms.CharField(max_length=WORKER_ID_MAX, label="Your worker id on the crowd platform",
                                widget=forms.TextInput(attrs={"autocomplete": "off"}))


class ConsentForm(forms.Form):
    """Consent, and the viewing conditions the page's script reports (consent.js): the pixel ratio,
    the window, the screen (CSS pixels of ``window.screen``) and the signals of the device type (a
    coarse primary pointer, the touch points; the user agent comes with the request)."""

    consent = forms.BooleanField(error_messages={"required": "Please tick the box to agree before you start."})
    # FloatField refuses inf and nan; a ratio outside this range is no real display.
    device_pixel_ratio = forms.FloatField(required=False, min_value=0.1, max_value=16)
    viewport = forms.CharField(required=False, max_length=40)
    screen = forms.RegexField(required=False, regex=r"^\d{1,5}x\d{1,5}$", max_length=11)
    coarse_pointer = forms.ChoiceField(required=False, choices=[("", ""), ("1", "yes"), ("0", "no")])
    touch_points = forms.IntegerField(required=False, min_value=0, max_value=1000)

    def viewing(self) -> dict:
        """Viewing conditions to store: a value the browser sent malformed is stored as missing
        (None, or an empty text), as is one it did not send (no JavaScript)."""
        data = self.cleaned_data if hasattr(self, "cleaned_data") else {}

        def value(name, missing=None):
            return missing if name in self.errors else data.get(name, missing)

        pointer = value("coarse_pointer", "")
        return {"device_pixel_ratio": value("device_pixel_ratio"), "viewport": value("viewport", ""),
                "screen": value("screen", ""), "coarse_pointer": {"1": True, "0": False}.get(pointer),
                "touch_points": value("touch_points")}


class _RefusingForm(forms.Form):
    def refusal(self) -> sessions.RatingRefused:
        """The first error, as the refusal a view answers with (400: the request itself is malformed)."""
        first = next(iter(self.errors.values()))[0]
        return sessions.RatingRefused(first, 400)


class _AnswerForm(_RefusingForm):
    """What every answer carries: the signed token of its item and the browser's response time.

    The token (``item``) is checked by :mod:`ratings.sessions`, which knows the rater; an empty one
    is refused there as damaged.
    """

    item = forms.CharField(required=False, strip=False)
    response_ms = forms.CharField(required=False)

    def clean_response_ms(self):
        """ms from when the image appeared; None when the browser sent none; ``sessions.UNUSABLE``
        (stored as missing, never an error: the rating still counts) for a negative, infinite or
        unreadable time. The bound (``MAX_RESPONSE_MS``) and the server's check are the session's."""
        value = self.cleaned_data["response_ms"]
        if value == "":
            return None
        try:
            ms = float(value)
        except ValueError:
            return sessions.UNUSABLE
        return int(ms) if math.isfinite(ms) and ms >= 0 else sessions.UNUSABLE


class RatingForm(_AnswerForm):
    """A score for the item a signed token names (the scale is ``sessions.SCORE_LABELS``)."""

    score = forms.CharField(required=False)

    def clean_score(self) -> int:
        try:
            score = int(self.cleaned_data["score"])
        except (TypeError, ValueError):
            raise forms.ValidationError(sessions.SCORE_MISSING, code="invalid") from None
        if score not in sessions.SCORE_LABELS:
            raise forms.ValidationError(sessions.score_refused(score), code="out_of_range")
        return score


class PairForm(_AnswerForm):
    """The side chosen for the pair a signed token names, and how the pair was viewed (the page's
    layout: both side by side, or one at a time with ``toggles`` switches)."""

    choice = forms.ChoiceField(choices=[(s, s) for s in pair_steps.SIDES],
                               error_messages={"required": pair_steps.CHOOSE_A_SIDE,
                                               "invalid_choice": pair_steps.CHOOSE_A_SIDE})
    layout = forms.ChoiceField(required=False, choices=[(v, v) for v in pair_steps.LAYOUTS])
    toggles = forms.IntegerField(required=False, min_value=0, max_value=pair_steps.TOGGLES_MAX)

    def answer(self) -> pair_steps.PairAnswer:
        data = self.cleaned_data
        return pair_steps.PairAnswer(data["choice"], data.get("layout") or "", data.get("toggles") or 0)


class CalibrationForm(_RefusingForm):
    """Continue past the calibration example at ``position``."""

    position = forms.IntegerField(min_value=0, error_messages={
        key: sessions.NOT_CALIBRATION for key in ("required", "invalid", "min_value")})
