"""A rater's session: the stored item order, and recording each rating exactly once.

The order of a session is drawn once, from the study seed and the rater's label, and stored as
``SessionItem`` rows, so a reload or another device resumes at the same place. Every state change
happens in a transaction that locks the session row; a rating is refused (with a message saying
why) unless it is for the item the session is waiting for, so replays, double clicks, stale pages
and forged requests store nothing twice and lose nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import random
from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone
from django.utils.crypto import salted_hmac

from analysis.io import MAX_RESPONSE_MS

from .models import Rater, Rating, Session, SessionItem, Stimulus, Study, StudyDataset

__all__ = [
    "RESPONSE_SLACK_MS",
    "RatingRefused",
    "RecordResult",
    "Step",
    "advance_calibration",
    "completion_code",
    "current_item",
    "current_step",
    "ensure_open",
    "item_token",
    "record_rating",
    "start_session",
    "step_token",
]

SCORE_LABELS = {1: "Bad", 2: "Poor", 3: "Fair", 4: "Good", 5: "Excellent"}


class RatingRefused(Exception):
    """A request that must change nothing; ``message`` is shown to the rater, ``status`` is HTTP."""

    def __init__(self, message: str, status: int = 409):
        super().__init__(message)
        self.message, self.status = message, status


# -- building the stored order ---------------------------------------------------------------------
def _rng(study: Study, rater: Rater, purpose: str) -> random.Random:
    return random.Random(f"{study.seed}:{rater.label}:{purpose}")


def _test_stimuli(study: Study, rater: Rater) -> list[Stimulus]:
    done = Stimulus.objects.filter(study=study, state=Stimulus.State.DONE, image__dataset__role=StudyDataset.Role.TEST)
    if study.assignment == Study.Assignment.ALL:
        return list(done.order_by("pk"))
    # Balanced: the least-assigned stimuli first (ties broken by the rater's own random draw), so every
    # stimulus approaches ratings_per_stimulus; the caller holds the study lock while counting.
    counts = done.annotate(n=Count("items", filter=Q(items__kind=SessionItem.Kind.TEST))).order_by("pk")
    rng = _rng(study, rater, "balance")
    ranked = sorted(counts, key=lambda s: (s.n >= study.ratings_per_stimulus, s.n, rng.random()))
    return ranked[: study.items_per_rater]


def _calibration_images(study: Study):
    dataset = study.datasets.filter(role=StudyDataset.Role.CALIBRATION).first()
    if dataset is None:
        return [], []
    images = list(dataset.images.order_by("pk"))
    return images[: study.calibration_images], images[study.calibration_images:]


def build_items(session: Session) -> list[SessionItem]:
    """The session's items in order: calibration, then test items with repeats and gold mixed in.

    Only made (DONE) stimuli are shown: a study opened with ``run_study --accept-failures`` has
    failed ones, which are left out (a calibration pair whose NN or HR version failed, and a gold
    item whose stimulus failed, are skipped) rather than breaking every rater's session.
    """
    rater, study = session.rater, session.rater.study

    def made(image, method: str) -> Stimulus | None:
        return Stimulus.objects.filter(image=image, condition__name=method, state=Stimulus.State.DONE).first()

    calibration, gold_images = _calibration_images(study)
    plan: list[tuple[Stimulus, str, int | None]] = []
    for image in calibration:
        pair = made(image, "nearest"), made(image, "hr")
        if None in pair:
            continue  # the told scores teach the scale only as a matched NN/HR pair
        plan.append((pair[0], SessionItem.Kind.CALIBRATION, 1))
        plan.append((pair[1], SessionItem.Kind.CALIBRATION, 5))
    n_calibration = len(plan)

    tests = _test_stimuli(study, rater)
    rng = _rng(study, rater, "order")
    rng.shuffle(tests)
    body: list[tuple[Stimulus, str, int | None]] = [(s, SessionItem.Kind.TEST, None) for s in tests]
    if study.repeat_images:
        repeated = [s for s in tests if s.image.dataset.name == study.repeat_dataset and s.condition.name == study.repeat_method]
        repeated = sorted(repeated, key=lambda s: s.image.name)[: study.repeat_images]
        for stimulus in repeated:
            first = next(i for i, entry in enumerate(body) if entry[0].pk == stimulus.pk)
            # Anywhere at least one item away from the other showing; the earlier showing is the
            # test item and the later one the repeat.
            slots = [p for p in range(len(body) + 1) if p <= first - 1 or p >= first + 2]
            at = rng.choice(slots or [len(body)])  # a one-item session cannot separate them
            body.insert(at, (stimulus, SessionItem.Kind.TEST, None))
            shown = [i for i, entry in enumerate(body) if entry[0].pk == stimulus.pk]
            body[shown[1]] = (stimulus, SessionItem.Kind.REPEAT, None)
    for k, image in enumerate(gold_images[: study.gold_items]):
        method, expected = ("nearest", 1) if k % 2 == 0 else ("hr", 5)
        gold = made(image, method)
        at = rng.randint(0, len(body))  # drawn even when skipped: the other items keep their places
        if gold is not None:
            body.insert(at, (gold, SessionItem.Kind.GOLD, expected))
    plan.extend(body)
    items = [SessionItem(session=session, position=i, stimulus=s, kind=kind, expected_score=expected)
             for i, (s, kind, expected) in enumerate(plan)]
    created = SessionItem.objects.bulk_create(items)
    # Calibration items come first by construction, so these two counts give every progress figure.
    session.calibration_items = n_calibration
    session.planned_scored_items = len(body)
    session.save(update_fields=["calibration_items", "planned_scored_items"])
    return created


def start_session(rater: Rater, *, device_pixel_ratio: float | None = None, viewport: str = "",
                  user_agent: str = "") -> Session:
    """Record consent and viewing conditions and draw the stored order (once)."""
    with transaction.atomic():
        study = Study.objects.select_for_update().get(pk=rater.study_id)  # balanced counts need it
        session = Session.objects.select_for_update().get(rater=rater)
        if session.state != Session.State.CONSENT:
            return session  # consent given already (another tab, a replay): nothing to do
        if study.state == Study.State.CLOSED:
            raise RatingRefused(CLOSED_MESSAGE, 410)
        if study.state != Study.State.READY:
            raise RatingRefused("This study is not open for rating yet: its images are still being made.", 503)
        if not session.items.exists():
            build_items(session)
        if not session.items.exists():
            raise RatingRefused("There is nothing left to rate in this study. Thank you!", 410)
        now = timezone.now()
        Rater.objects.filter(pk=rater.pk).update(consent_at=now, device_pixel_ratio=device_pixel_ratio,
                                                 viewport=viewport[:40], user_agent=user_agent[:400])
        session.started_at = now
        first = session.items.order_by("position").first()
        session.state = Session.State.CALIBRATION if first.kind == SessionItem.Kind.CALIBRATION else Session.State.RATING
        session.save()
        return session


def current_item(session: Session) -> SessionItem | None:
    """The item the session waits for (marks when it was first shown); None when complete."""
    return current_step(session).item


@dataclass(frozen=True)
class Step:
    """What a rater sees now: the item, the one after it (to preload), and how far they are.

    ``number`` and ``total`` count calibration items on a calibration step and rated items (test,
    repeat, gold) otherwise; ``done`` is how many of those are behind the rater.
    """

    session: Session
    item: SessionItem | None
    following: SessionItem | None
    number: int
    total: int
    done: int


def _step(session: Session, item: SessionItem | None, following: SessionItem | None) -> Step:
    p = session.position
    if item is not None and item.kind == SessionItem.Kind.CALIBRATION:
        return Step(session, item, following, p + 1, session.calibration_items, p)
    done = max(0, p - session.calibration_items)
    return Step(session, item, following, done + 1, session.planned_scored_items, done)


def current_step(session: Session, *, mark_shown: bool = True) -> Step:
    """The session's current step: one query for the item and the one after it."""
    p = session.position
    pair = {i.position: i for i in session.items.select_related("stimulus").filter(position__in=(p, p + 1))}
    item = pair.get(p)
    if mark_shown and item is not None and item.shown_at is None:
        SessionItem.objects.filter(pk=item.pk, shown_at__isnull=True).update(shown_at=timezone.now())
    return _step(session, item, pair.get(p + 1))


def _advance(session: Session) -> Step:
    """Move past the current item; returns the new step (one query, plus the updates).

    The next item goes to the browser now (in this answer, or the page it is redirected to), so its
    ``shown_at`` is set here: rater.js shows it without loading a page, where ``current_step`` would
    set it. Not when a break comes first: the item is shown when the rater comes back.
    """
    session.position += 1
    p = session.position
    pair = {i.position: i for i in session.items.select_related("stimulus").filter(position__in=(p, p + 1))}
    nxt = pair.get(p)
    if nxt is None:
        session.state = Session.State.COMPLETE
        session.completed_at = timezone.now()
        session.completion_code = completion_code(session.rater)
    else:
        session.state = Session.State.CALIBRATION if nxt.kind == SessionItem.Kind.CALIBRATION else Session.State.RATING
    session.save(update_fields=["position", "state", "completed_at", "completion_code"])
    if nxt is not None and nxt.shown_at is None and not break_due(session):
        nxt.shown_at = timezone.now()
        SessionItem.objects.filter(pk=nxt.pk, shown_at__isnull=True).update(shown_at=nxt.shown_at)
    return _step(session, nxt, pair.get(p + 1))


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
            raise RatingRefused("That is not one of your calibration images.", 400)
        if position == session.position:
            _advance(session)
        return session


# -- ratings ----------------------------------------------------------------------------------------
CLOSED_MESSAGE = "This study is closed and takes no more ratings; nothing was stored. Thank you for taking part!"
# How far the browser's response time may exceed the server's (shown_at to answer): the browser shows
# an item only after the server sent it, so more than this is a timer left running from an older
# item; the slack covers clock differences between web machines.
RESPONSE_SLACK_MS = 1000


def ensure_open(study_id: int) -> None:
    """Refuse (HTTP 410 Gone) when the study is closed: its results are final, so nothing is stored.

    Reads the state from the database, not from a ``Study`` loaded earlier in the request.
    """
    if Study.objects.filter(pk=study_id, state=Study.State.CLOSED).exists():
        raise RatingRefused(CLOSED_MESSAGE, 410)


# The browser sent a response time that cannot be one (negative, infinite, not a number).
_UNUSABLE = object()


def _client_ms(value):
    """The browser's response time in ms; None when it sent none, ``_UNUSABLE`` for a broken one."""
    if value in (None, ""):
        return None
    try:
        ms = float(value)
    except (TypeError, ValueError):
        return _UNUSABLE
    return int(ms) if math.isfinite(ms) and ms >= 0 else _UNUSABLE


def _response_ms(client_ms, shown_at, now) -> int | None:
    """The response time to store, in ms.

    The browser's time (from when the image appeared) is the precise one; the server's (from
    ``shown_at``, when it sent the item) bounds it and stands in when the browser sends none (no
    JavaScript). A broken browser time (negative: a clock that went back) or one above
    ``MAX_RESPONSE_MS`` (a tab left open) says nothing about the image: missing, never 0.
    """
    if client_ms is _UNUSABLE:
        return None
    server_ms = None if shown_at is None else max(0, int((now - shown_at).total_seconds() * 1000))
    if client_ms is None:
        value = server_ms
    elif server_ms is None:
        value = client_ms
    else:
        value = min(client_ms, server_ms + RESPONSE_SLACK_MS)
    return None if value is None or value > MAX_RESPONSE_MS else value


class ItemTokens:
    """Signed references to one item of one rater, carried by the rating form.

    The payload names the rater by a keyed hash of their secret token, never by a database id
    (sequential, so it would tell a rater how many came before them), and the item by its position
    in the session and its stimulus's opaque public id.
    """

    salt = "ratings.rating-item"

    def _rater_ref(self, rater_token: str) -> str:
        return salted_hmac(self.salt, rater_token).hexdigest()[:16]

    def make_token(self, rater_token: str, position: int, public_id: str) -> str:
        return signing.dumps([self._rater_ref(rater_token), position, public_id], salt=self.salt)

    def check_token(self, rater: Rater, token: str) -> tuple[int, str]:
        """(position, public id) of the item; raises RatingRefused for a forged or another rater's form."""
        try:
            rater_ref, position, public_id = signing.loads(token, salt=self.salt)
            position, public_id = int(position), str(public_id)
        except (signing.BadSignature, ValueError, TypeError):
            raise RatingRefused("This rating form is damaged or forged; please reload the page.", 400) from None
        if not hmac.compare_digest(str(rater_ref), self._rater_ref(rater.token)):
            raise RatingRefused("This rating belongs to another rater's link; nothing was stored.", 403)
        return position, public_id


item_tokens = ItemTokens()


def item_token(item: SessionItem) -> str:
    """The rating form's token for ``item``."""
    return item_tokens.make_token(item.session.rater.token, item.position, item.stimulus.public_id)


def step_token(step: Step) -> str:
    """``item_token`` of the step's item, without fetching the session again."""
    return item_tokens.make_token(step.session.rater.token, step.item.position, step.item.stimulus.public_id)


@dataclass(frozen=True)
class RecordResult:
    session: Session
    stored: bool  # False for a replay of an already stored rating
    step: Step | None = None  # the step after this rating (None for a replay: ask current_step)


def record_rating(rater: Rater, token: str, score, response_ms=None) -> RecordResult:
    """Store the rating of the item ``token`` refers to, exactly once.

    Raises
    ------
    RatingRefused
        Score outside 1..5, an item of another rater or not in this session, a page that is out
        of date (the session has moved on, or not yet reached the item), a finished session, or a
        closed study (410: its results are final).
        A replay of the same score for an item already rated is not an error: it stores nothing
        and reports ``stored=False``.
    """
    position, public_id = item_tokens.check_token(rater, token)
    try:
        score = int(score)
    except (TypeError, ValueError):
        raise RatingRefused("Please choose a score from 1 to 5.", 400) from None
    if score not in SCORE_LABELS:
        raise RatingRefused(f"A score must be from 1 to 5; {score} was refused and nothing was stored.", 400)
    client_ms = _client_ms(response_ms)
    with transaction.atomic():
        ensure_open(rater.study_id)
        session = _locked_session(rater)
        item = session.items.select_related("stimulus", "rating").filter(position=position).first()
        if item is None or item.stimulus.public_id != public_id:
            raise RatingRefused("That image is not in your assignment; nothing was stored.", 400)
        if item.kind == SessionItem.Kind.CALIBRATION:
            raise RatingRefused("Calibration images are not rated; please continue.", 400)
        try:
            existing = item.rating
        except Rating.DoesNotExist:
            existing = None
        if existing is not None:
            if existing.score == score:
                return RecordResult(session, stored=False)  # a replay or a double click
            raise RatingRefused("You already rated this image (from another tab or an older page). "
                                "Your first answer was kept; continue with the next image.", 409)
        if session.state == Session.State.COMPLETE:
            raise RatingRefused("Your session is complete; nothing more can be stored.", 410)
        if position != session.position:
            raise RatingRefused("This page is out of date: please continue with the image shown now.", 409)
        response_ms = _response_ms(client_ms, item.shown_at, timezone.now())
        Rating.objects.create(item=item, rater=rater, stimulus=item.stimulus, score=score, response_ms=response_ms)
        return RecordResult(session, stored=True, step=_advance(session))


def completion_code(rater: Rater) -> str:
    """A code the rater pastes into the crowd platform: verifiable, unguessable, stable."""
    digest = hmac.new(settings.SECRET_KEY.encode(), f"complete:{rater.study_id}:{rater.pk}".encode(), hashlib.sha256)
    return digest.hexdigest()[:10].upper()


def break_due(session: Session) -> bool:
    """A break is offered after every ``break_every`` rated items (not after the last one)."""
    every = session.rater.study.break_every
    if not every or session.state == Session.State.COMPLETE:
        return False
    rated = session.position - session.calibration_items  # calibration items come first
    return rated > 0 and rated % every == 0
