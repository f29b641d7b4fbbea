"""A rater's session: consent, the steps along the stored order, each answer stored exactly once.

The flow is consent -> calibration (scores told) -> training (crowd studies with ``[qualification]``:
rated, the expected score told after each) -> rating (test, repeat and gold items, with a break every
``break_every`` rated items) -> done (a completion code). A worker who fails a rule of
:mod:`ratings.worker_checks` (the viewing environment at consent, the training's pass rule, the
attention checks as answers arrive) is screened out by :func:`screen_out`: the session ends, the
answers given are kept, and the exit page takes the worker to the platform's screened-out route.

The order itself is drawn by :mod:`ratings.session_order`. Every state change happens in a
transaction that locks the session row; an answer is refused (with a message saying why) unless it
is for the item the session waits for, so replays, double clicks, stale pages and forged requests
store nothing twice and lose nothing.

Where the rater goes next is decided once, by :meth:`Step.next_page`; what the browser is sent for a
step is built once, by :meth:`Step.payload` (the rating page's context and the JSON answer after a
rating are both that dict).

Extension point: kinds of step
------------------------------
What differs between kinds of item (which page shows it, what its payload holds, what an answer is
and how it is stored) is a :class:`StepKind` in ``STEP_KINDS``, keyed by ``SessionItem.kind``; the
flow (tokens, locking, the exactly-once rule, advancing, breaks, the end) never looks at the kind
otherwise. A paired-comparison step (issue 17: two stimuli, left/right, a choice) is one more
``StepKind`` subclass whose ``payload`` sends both images' URLs and sides, whose ``check_answer``
accepts ``"left"``/``"right"``, and whose ``stored_answer``/``store`` read and write its judgment
row, registered under its own item kind, with its page and form; nothing here changes.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, replace
from typing import Any

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.db.models import Count, Min
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import salted_hmac

from analysis.io import MAX_RESPONSE_MS

from .expiry import expire_stalled
from .models import Rater, Rating, Session, SessionItem, Study
from .pair_order import build_pair_items, next_active_item
from .session_order import build_items
from .worker_checks import classify_device, parse_screen

__all__ = [
    "RESPONSE_SLACK_MS",
    "SCORE_LABELS",
    "STEP_KINDS",
    "UNUSABLE",
    "ItemTokenGenerator",
    "RatingRefused",
    "RecordResult",
    "Step",
    "StepKind",
    "advance_calibration",
    "break_due",
    "completion_code",
    "current_item",
    "current_step",
    "ensure_open",
    "item_token",
    "item_tokens",
    "image_url",
    "record_judgment",
    "record_rating",
    "screen_out",
    "start_session",
]

# The rating scale (ACR, ITU-T P.910): the scores a rating may take and the words on their buttons.
SCORE_LABELS = {1: "Bad", 2: "Poor", 3: "Fair", 4: "Good", 5: "Excellent"}
SCORE_MISSING = "Please choose a score from 1 to 5."
CLOSED_MESSAGE = "This study is closed and takes no more ratings; nothing was stored. Thank you for taking part!"
NOT_CALIBRATION = "That is not one of your calibration images."
SCREEN_UNKNOWN = ("This study checks the size of your screen, which your browser did not report: please allow "
                  "JavaScript for this site and start again. Nothing was stored.")
ENDED_MESSAGE = "Your session has ended; nothing more can be stored. The ratings you gave are kept."
# How far the browser's response time may exceed the server's (shown_at to answer): the browser shows
# an item only after the server sent it, so more than this is a timer left running from an older
# item; the slack covers clock differences between web machines.
RESPONSE_SLACK_MS = 1000
# A browser response time that cannot be one (negative, infinite, not a number): stored as missing.
UNUSABLE = object()


def score_refused(score) -> str:
    return f"A score must be from 1 to 5; {score} was refused and nothing was stored."


class RatingRefused(Exception):
    """A request that must change nothing; ``message`` is shown to the rater, ``status`` is HTTP."""

    def __init__(self, message: str, status: int = 409):
        super().__init__(message)
        self.message, self.status = message, status


# -- item tokens ------------------------------------------------------------------------------------
class ItemTokenGenerator:
    """The signed reference to one item of one rater that an answer carries (as Django's
    ``PasswordResetTokenGenerator``: one salt, ``make_token``/``check_token``, one module instance).

    The payload names the rater by a keyed hash of their secret token, never by a database id
    (sequential, so it would tell a rater how many came before them), and the item by its position
    in the session and its stimulus's opaque public id.
    """

    salt = "ratings.rating-item"

    def _rater_ref(self, rater_token: str) -> str:
        return salted_hmac(self.salt, rater_token).hexdigest()[:16]

    def make_token(self, item: SessionItem) -> str:
        """The token for ``item`` (its session's rater, its position, its stimulus)."""
        payload = [self._rater_ref(item.session.rater.token), item.position, item.stimulus.public_id]
        return signing.dumps(payload, salt=self.salt)

    def check_token(self, rater: Rater, token: str) -> tuple[int, str]:
        """(position, public id) of the item; raises RatingRefused for a forged or another rater's token."""
        try:
            rater_ref, position, public_id = signing.loads(token, salt=self.salt)
            position, public_id = int(position), str(public_id)
        except (signing.BadSignature, ValueError, TypeError):
            raise RatingRefused("This rating form is damaged or forged; please reload the page.", 400) from None
        if not hmac.compare_digest(str(rater_ref), self._rater_ref(rater.token)):
            raise RatingRefused("This rating belongs to another rater's link; nothing was stored.", 403)
        return position, public_id


item_tokens = ItemTokenGenerator()
item_token = item_tokens.make_token  # the token of one item, for callers that hold an item


# -- kinds of step ----------------------------------------------------------------------------------
def image_url(rater_token: str, public_id: str) -> str:
    return reverse("ratings:image", kwargs={"token": rater_token, "public_id": public_id})


class StepKind:
    """What one kind of session item is to the flow (see the module docstring: the extension point).

    ``page`` is the URL name that shows it, ``state`` the session's state while it is current,
    ``answer_relation`` the reverse relation of ``SessionItem`` that holds its stored answer.
    """

    page: str
    state: str
    answer_relation: str | None = None
    warm_up: bool = False  # shown before the scored items (calibration, practice): counted apart

    def images(self, item: SessionItem) -> list[str]:
        """Public ids of the stimuli the step shows (the next step's are preloaded)."""
        return [item.stimulus.public_id]

    def payload(self, step: Step) -> dict[str, Any]:
        """What the browser needs of this kind of step, beyond the progress figures."""
        raise NotImplementedError

    def check_answer(self, answer) -> None:
        """Raise RatingRefused (400) unless ``answer`` is one this kind of step takes."""
        raise NotImplementedError

    def stored_answer(self, item: SessionItem):
        """The answer stored for ``item`` (None when there is none yet)."""
        raise NotImplementedError

    def store(self, item: SessionItem, answer, response_ms: int | None) -> None:
        raise NotImplementedError

    def feedback(self, item: SessionItem, answer) -> str:
        """What the rater is told right after answering (practice items); empty: nothing."""
        return ""

    def screening(self, item: SessionItem) -> str | None:
        """Why the session ends after the answer to ``item`` just stored (a rule of ``[attention]``
        failed, in words); None: it goes on. Scored answers are checked as they arrive, on this
        session's answers only; warm-up answers are not (training has its own rule)."""
        if self.warm_up or self.answer_relation is None:
            return None
        rules = item.session.rater.study.attention
        if rules is None or not rules.end_session:
            return None  # no rule, or flag only: the payment decisions read the same rules post hoc
        answers, times = _scored_answers(item.session, self.answer_relation)
        return rules.problem(answers, times)


class CalibrationStep(StepKind):
    """An example with its score told; the rater continues (``advance_calibration``), nothing is stored."""

    page = "ratings:calibrate"
    state = Session.State.CALIBRATION
    warm_up = True

    def payload(self, step: Step) -> dict[str, Any]:
        item = step.item
        return {"image_url": image_url(step.session.rater.token, item.stimulus.public_id),
                "position": item.position, "expected_score": item.expected_score,
                "label": SCORE_LABELS[item.expected_score]}

    def check_answer(self, answer) -> None:
        raise RatingRefused("Calibration images are not rated; please continue.", 400)


class ScoredStep(StepKind):
    """One stimulus rated 1..5 (test, repeat and gold items alike: the rater cannot tell them apart)."""

    page = "ratings:rate"
    state = Session.State.RATING
    answer_relation = "rating"

    def payload(self, step: Step) -> dict[str, Any]:
        return {"item": item_tokens.make_token(step.item),
                "image_url": image_url(step.session.rater.token, step.item.stimulus.public_id)}

    def check_answer(self, answer) -> None:
        if answer not in SCORE_LABELS:
            raise RatingRefused(score_refused(answer), 400)

    def stored_answer(self, item: SessionItem):
        try:
            return item.rating.score
        except Rating.DoesNotExist:
            return None

    def store(self, item: SessionItem, answer, response_ms: int | None) -> None:
        Rating.objects.create(item=item, rater=item.session.rater, stimulus=item.stimulus, score=answer,
                              response_ms=response_ms)


class TrainingStep(ScoredStep):
    """P.808's training: an obvious image (nearest-neighbour or original) rated on the rating page,
    the expected score told right after; after the last one, the pass rule of ``[qualification]``."""

    warm_up = True

    def payload(self, step: Step) -> dict[str, Any]:
        return {**super().payload(step), "training": True}

    def feedback(self, item: SessionItem, answer) -> str:
        expected = item.expected_score
        return f"Expected: {expected} ({SCORE_LABELS[expected]}); you answered {answer} ({SCORE_LABELS[answer]})."

    def screening(self, item: SessionItem) -> str | None:
        """The pass rule, once every training item is answered (None before, and on a pass)."""
        rows = list(item.session.items.filter(kind=SessionItem.Kind.TRAINING).order_by("position")
                    .values_list("rating__score", "expected_score"))
        if any(score is None for score, _ in rows):
            return None
        qualification = item.session.rater.study.qualification
        if qualification is None:
            return None
        return qualification.training_problem([s for s, _ in rows], [e for _, e in rows])


_SCORED = ScoredStep()
STEP_KINDS: dict[str, StepKind] = {
    SessionItem.Kind.CALIBRATION: CalibrationStep(),
    SessionItem.Kind.TRAINING: TrainingStep(),
    SessionItem.Kind.TEST: _SCORED,
    SessionItem.Kind.REPEAT: _SCORED,
    SessionItem.Kind.GOLD: _SCORED,
}

# What an attention rule reads of each kind of stored answer: the score, or the side chosen.
_ANSWER_VALUE = {"rating": "score", "judgment": "side"}


def _scored_answers(session: Session, relation: str) -> tuple[list, list]:
    """The session's scored answers held by ``relation`` so far, in the order shown: (values, response
    times). One query on this session's items (a crowd session has about a hundred)."""
    kinds = [k for k, step in STEP_KINDS.items() if not step.warm_up and step.answer_relation == relation]
    rows = (session.items.filter(kind__in=kinds, **{f"{relation}__isnull": False}).order_by("position")
            .values_list(f"{relation}__{_ANSWER_VALUE[relation]}", f"{relation}__response_ms"))
    pairs = list(rows)
    return [v for v, _ in pairs], [t for _, t in pairs]


def _answer_relations() -> list[str]:
    """The relations that hold stored answers, of every kind registered (ratings.pair_steps adds one)."""
    return sorted({k.answer_relation for k in STEP_KINDS.values() if k.answer_relation})


# -- steps ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Step:
    """Where a rater is: the item, the one after it (to preload), how far they are, whether a break comes.

    ``number`` and ``total`` count the items of its own kind on a warm-up step (calibration,
    training, practice) and rated items (test, repeat, gold) otherwise; ``done`` is how many of
    those are behind the rater. ``on_break`` is set only on the step an answer led to (a break is
    offered once, right after the answer that made it due; coming back from it shows the item).
    """

    session: Session
    item: SessionItem | None
    following: SessionItem | None
    number: int
    total: int
    done: int
    on_break: bool = False

    @property
    def kind(self) -> StepKind | None:
        return None if self.item is None else STEP_KINDS[self.item.kind]

    def next_page(self) -> str:
        """The URL name of the page the rater belongs on: consent, break, done, or the step's own page."""
        if self.session.state == Session.State.CONSENT:
            return "ratings:consent"
        if self.item is None or self.session.is_over:  # finished, expired or screened out: the exit
            return "ratings:done"
        if self.on_break:
            return "ratings:break"
        return self.kind.page

    def url(self) -> str:
        return reverse(self.next_page(), kwargs={"token": self.session.rater.token})

    def payload(self) -> dict[str, Any]:
        """What the page shows for this step and what the JSON answer sends to show it without a reload."""
        if self.item is None:
            return {}
        following = self.following_images()
        return {**self.kind.payload(self), "next_url": following[0] if following else None, "number": self.number,
                "total": self.total, "done": self.done}

    def following_images(self) -> list[str]:
        """URLs of every image the next step shows (the browser preloads them)."""
        if self.following is None:
            return []
        token = self.session.rater.token
        return [image_url(token, public_id) for public_id in STEP_KINDS[self.following.kind].images(self.following)]

    def mark_shown(self) -> None:
        """Note when the item was first sent to the browser (response times count from then)."""
        if self.item is not None and self.item.shown_at is None:
            self.item.shown_at = timezone.now()
            SessionItem.objects.filter(pk=self.item.pk, shown_at__isnull=True).update(shown_at=self.item.shown_at)


def _load_step(session: Session, *, on_break: bool = False) -> Step:
    """The step at ``session.position``: one query for the item and the one after it."""
    p = session.position
    pair = {i.position: i for i in session.items.select_related("stimulus", "right_stimulus")
            .filter(position__in=(p, p + 1))}
    item = pair.get(p)
    if item is not None and STEP_KINDS[item.kind].warm_up:
        # warm-up items come first, each kind in one run (calibration, then training): counted by kind
        span = session.items.filter(kind=item.kind).aggregate(first=Min("position"), n=Count("pk"))
        return Step(session, item, pair.get(p + 1), p - span["first"] + 1, span["n"], p - span["first"])
    done = max(0, p - session.calibration_items)  # warm-up items (calibration_items of them) come first
    return Step(session, item, pair.get(p + 1), done + 1, session.planned_scored_items, done, on_break)


def current_step(session: Session, *, mark_shown: bool = True) -> Step:
    """The session's current step (no break: a break is offered only right after an answer)."""
    step = _load_step(session)
    if mark_shown:
        step.mark_shown()
    return step


def current_item(session: Session) -> SessionItem | None:
    """The item the session waits for (marks when it was first shown); None when complete."""
    return current_step(session).item


def start_session(rater: Rater, *, device_pixel_ratio: float | None = None, viewport: str = "",
                  user_agent: str = "", screen: str = "", coarse_pointer: bool | None = None,
                  touch_points: int | None = None) -> Session:
    """Record consent and viewing conditions and draw the stored order (once).

    ``screen`` ("1920x1080", CSS pixels of ``window.screen``), ``coarse_pointer`` and ``touch_points``
    are the consent page's report; with ``user_agent`` they tell the device type
    (:func:`ratings.worker_checks.classify_device`). A worker whose screen or device fails the
    study's ``[qualification]`` is screened out here, before any item is drawn, so a balanced
    study's pool loses nothing.
    """
    with transaction.atomic():
        study = Study.objects.select_for_update().get(pk=rater.study_id)  # balanced counts need it
        session = Session.objects.select_for_update().get(rater=rater)
        if session.state != Session.State.CONSENT:
            return session  # consent given already (another tab, a replay): nothing to do
        if study.state == Study.State.CLOSED:
            raise RatingRefused(CLOSED_MESSAGE, 410)
        if study.state != Study.State.READY:
            raise RatingRefused("This study is not open for rating yet: its images are still being made.", 503)
        size = parse_screen(screen)
        device = classify_device(user_agent, coarse_pointer=coarse_pointer, touch_points=touch_points, screen=size)
        viewing = {"device_pixel_ratio": device_pixel_ratio, "viewport": viewport[:40], "user_agent": user_agent[:400],
                   "screen": screen[:40] if size else "", "device_type": device}
        qualification = study.qualification
        if qualification is not None:
            if size is None and qualification.needs_screen:
                raise RatingRefused(SCREEN_UNKNOWN, 400)
            problem = qualification.environment_problem(size, device)
            if problem:
                Rater.objects.filter(pk=rater.pk).update(consent_at=timezone.now(), **viewing)
                screen_out(session, problem)
                return session
        if not session.items.exists():
            expire_stalled(study)  # stalled sessions give their items back before this one's are drawn
            (build_pair_items if study.is_paired else build_items)(session)
        first = session.items.order_by("position").first()
        if first is None:
            raise RatingRefused("There is nothing left to rate in this study. Thank you!", 410)
        now = timezone.now()
        Rater.objects.filter(pk=rater.pk).update(consent_at=now, **viewing)
        session.started_at = session.last_active_at = now
        session.state = STEP_KINDS[first.kind].state
        session.save()
        return session


def screen_out(session: Session, reason: str) -> None:
    """End ``session`` as screened out, now, for ``reason`` (in words): the one end of every screening
    rule. The caller holds the session's row lock. What was answered is kept (flagged by the
    state); the worker is shown the exit with the screened-out code."""
    now = timezone.now()
    session.state = Session.State.SCREENED_OUT
    session.ended_at = session.last_active_at = now
    session.end_reason = reason[:300]
    session.completion_code = completion_code(session.rater, "screened_out")
    session.save(update_fields=["position", "state", "ended_at", "last_active_at", "end_reason", "completion_code"])


def break_due(session: Session) -> bool:
    """A break is offered after every ``break_every`` rated items (not after the last one)."""
    every = session.rater.study.break_every
    if not every or session.state in Session.ENDED_STATES:
        return False
    rated = session.position - session.calibration_items  # warm-up items come first
    return rated > 0 and rated % every == 0


def _advance(session: Session) -> Step:
    """Move past the current item; returns the new step (one query, plus the updates).

    The next item goes to the browser now (in this answer, or the page it is redirected to), so its
    ``shown_at`` is set here: rater.js shows it without loading a page, where ``current_step`` would
    set it. Not when a break comes first: the item is shown when the rater comes back.
    """
    session.position += 1
    session.last_active_at = timezone.now()
    step = _load_step(session)
    if step.item is None and session.rater.study.is_paired and session.rater.study.pairwise.design == "active":
        # the active design asks its next pair now, from every judgment so far (None: all asked)
        if next_active_item(session) is not None:
            step = _load_step(session)
    if step.item is None:
        session.state = Session.State.COMPLETE
        session.completed_at = timezone.now()
        session.completion_code = completion_code(session.rater)
    else:
        session.state = step.kind.state
    session.save(update_fields=["position", "state", "completed_at", "completion_code", "last_active_at"])
    step = replace(step, on_break=break_due(session))
    if not step.on_break:
        step.mark_shown()
    return step


def _locked_session(rater: Rater) -> Session:
    session = Session.objects.select_for_update().get(rater_id=rater.pk)
    session.rater = rater  # the caller's rater (with its study) saves a join in the locking query
    return session


def advance_calibration(rater: Rater, position: int) -> Session:
    """The rater has seen calibration item ``position`` and continues. Replays change nothing."""
    with transaction.atomic():
        session = _locked_session(rater)
        item = session.items.filter(position=position).first()
        if item is None or item.kind != SessionItem.Kind.CALIBRATION:
            raise RatingRefused(NOT_CALIBRATION, 400)
        if position == session.position and not session.is_over:
            _advance(session)
        return session


# -- answers ----------------------------------------------------------------------------------------
def ensure_open(study_id: int) -> None:
    """Refuse (HTTP 410 Gone) when the study is closed: its results are final, so nothing is stored.

    Reads the state from the database, not from a ``Study`` loaded earlier in the request.
    """
    if Study.objects.filter(pk=study_id, state=Study.State.CLOSED).exists():
        raise RatingRefused(CLOSED_MESSAGE, 410)


def _response_ms(client_ms, shown_at, now) -> int | None:
    """The response time to store, in ms.

    The browser's time (from when the image appeared) is the precise one; the server's (from
    ``shown_at``, when it sent the item) bounds it and stands in when the browser sends none (no
    JavaScript). A broken browser time (``UNUSABLE``: negative, a clock that went back) or one above
    ``MAX_RESPONSE_MS`` (a tab left open) says nothing about the image: missing, never 0.
    """
    if client_ms is UNUSABLE:
        return None
    server_ms = None if shown_at is None else max(0, int((now - shown_at).total_seconds() * 1000))
    if client_ms is None:
        value = server_ms
    elif server_ms is None:
        value = client_ms
    else:
        value = min(client_ms, server_ms + RESPONSE_SLACK_MS)
    return None if value is None or value > MAX_RESPONSE_MS else value


@dataclass(frozen=True)
class RecordResult:
    session: Session
    stored: bool  # False for a replay of an already stored answer
    step: Step  # where the rater is after it (for a replay: where the session already was)
    feedback: str = ""  # told to the rater about the answer just stored (practice pairs)


def record_rating(rater: Rater, token: str, score: int, response_ms: int | None = None) -> RecordResult:
    """Store the rating of the item ``token`` refers to, exactly once.

    ``score`` and ``response_ms`` are as ``RatingForm`` cleans them (``response_ms``: ms, None when
    the browser sent none, ``UNUSABLE`` for a broken one).

    Raises
    ------
    RatingRefused
        A token of another rater or not in this session, a score outside 1..5, a page that is out
        of date (the session has moved on, or not yet reached the item), a finished session, or a
        closed study (410: its results are final).
        A replay of the same score for an item already rated is not an error: it stores nothing
        and reports ``stored=False``.
    """
    return _record_answer(rater, token, score, response_ms)


def record_judgment(rater: Rater, token: str, answer, response_ms: int | None = None) -> RecordResult:
    """Store the side chosen for the pair ``token`` refers to, exactly once (``answer``: a
    :class:`ratings.pair_steps.PairAnswer`; the refusals are :func:`record_rating`'s)."""
    return _record_answer(rater, token, answer, response_ms)


def _record_answer(rater: Rater, token: str, answer, client_ms) -> RecordResult:
    """The exactly-once rule for every kind of step; the kind checks and stores the answer itself."""
    position, public_id = item_tokens.check_token(rater, token)
    with transaction.atomic():
        ensure_open(rater.study_id)
        session = _locked_session(rater)
        item = session.items.select_related("stimulus", "right_stimulus", *_answer_relations()).filter(
            position=position).first()
        if item is None or item.stimulus.public_id != public_id:
            raise RatingRefused("That image is not in your assignment; nothing was stored.", 400)
        kind = STEP_KINDS[item.kind]
        kind.check_answer(answer)
        existing = kind.stored_answer(item)
        if existing is not None:
            if existing == answer:  # a replay or a double click
                return RecordResult(session, stored=False, step=_load_step(session, on_break=break_due(session)))
            raise RatingRefused("You already rated this image (from another tab or an older page). "
                                "Your first answer was kept; continue with the next image.", 409)
        if session.state == Session.State.COMPLETE:
            raise RatingRefused("Your session is complete; nothing more can be stored.", 410)
        if session.is_over:
            raise RatingRefused(ENDED_MESSAGE, 410)
        if position != session.position:
            raise RatingRefused("This page is out of date: please continue with the image shown now.", 409)
        kind.store(item, answer, _response_ms(client_ms, item.shown_at, timezone.now()))
        item.session = session  # the locked row, with the caller's rater and study
        reason = kind.screening(item)
        if reason:  # the answer stays stored; the session ends here and the exit is next
            session.position += 1
            screen_out(session, reason)
            return RecordResult(session, stored=True, step=_load_step(session), feedback=kind.feedback(item, answer))
        return RecordResult(session, stored=True, step=_advance(session), feedback=kind.feedback(item, answer))


def completion_code(rater: Rater, purpose: str = "complete") -> str:
    """A code the rater pastes into the crowd platform: verifiable, unguessable, stable.

    ``purpose`` keeps the codes of two exits apart: ``"screened_out"`` gives the screened-out code,
    which is never a finished worker's (a platform pays the two differently).
    """
    if purpose not in ("complete", "screened_out"):
        raise ValueError(f"no completion code for {purpose!r}")
    digest = hmac.new(settings.SECRET_KEY.encode(), f"{purpose}:{rater.study_id}:{rater.pk}".encode(), hashlib.sha256)
    return digest.hexdigest()[:10].upper()
