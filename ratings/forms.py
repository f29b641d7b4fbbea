"""Forms that parse what rater pages post; the rules they feed live in the service modules."""

from __future__ import annotations

from django import forms

from .enrolment import WORKER_ID_MAX

__all__ = ["ConsentForm", "EnrolmentForm"]


class EnrolmentForm(forms.Form):
    """Open enrolment. A crowd platform's parameters fill it (the GET shows it filled in)."""

    worker_id = forms.CharField(max_length=WORKER_ID_MAX, label="Your worker id on the crowd platform",
                                widget=forms.TextInput(attrs={"autocomplete": "off"}))


class ConsentForm(forms.Form):
    """Consent, and the viewing conditions the page's script reports."""

    consent = forms.BooleanField(error_messages={"required": "Please tick the box to agree before you start."})
    # FloatField refuses inf and nan; a ratio outside this range is no real display.
    device_pixel_ratio = forms.FloatField(required=False, min_value=0.1, max_value=16)
    viewport = forms.CharField(required=False, max_length=40)

    def viewing(self) -> dict:
        """Viewing conditions to store: a value the browser sent malformed is stored as missing."""
        data = self.cleaned_data if hasattr(self, "cleaned_data") else {}
        return {"device_pixel_ratio": None if "device_pixel_ratio" in self.errors else data.get("device_pixel_ratio"),
                "viewport": "" if "viewport" in self.errors else data.get("viewport", "")}
