"""Open enrolment: crowd workers join a study through its link, once each, within limits.

Every rule of joining lives here: what a worker id is (normalised, so ``CaseWorker``, ``caseworker``
and ``ｃａｓｅｗｏｒｋｅｒ`` are one person; on a crowd platform stored with the platform's name in
front, :func:`ratings.crowd.platform_worker_id`, so ``prolific:abc`` and ``mturk:abc`` are two
people), how many may join, how often one address may try (``SR_ENROLMENT_RATE``), and who gets a
returning worker's link back: only the browser that enrolled them, which holds a signed cookie naming
the rater (:class:`EnrolmentCookie`). Anyone else typing a known worker id learns nothing of that rater.

Quotas and topping up. The study's target (:func:`enrolment_target`: ``raters``, or for a balanced
design the raters needed to give every stimulus ``ratings_per_stimulus`` ratings) counts *completed*
sessions. Every enrolment first expires the study's stalled sessions
(:func:`ratings.expiry.expire_stalled`), so their unrated items go back before the newcomer's items
are drawn. A newcomer is then refused (410) when the study is closed, when its completed sessions
reached ``raters`` (when the study file sets it), when a balanced design has no stimulus short of its target by top-up's count
(:mod:`ratings.balance`: every rating is collected, or the rest waits in live sessions, so a
newcomer would be given nothing to rate), or at the cap: ``SR_ENROLMENT_CAP_FACTOR`` x the target of
open raters that can still finish (live or complete; expired and screened-out ones, and ones who
never consented within ``stall_minutes``, no longer count), so replacements join after quitters
while the cap and the rate limit bound abuse. A returning worker (the same id, this
browser's cookie) is never refused at the door: they go back to their session, or to its exit when it
is over.

Enrolment itself is always a POST (a GET only shows the form or the crowd start page).
"""

from __future__ import annotations

import math
import time
import unicodedata

from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.db import IntegrityError, transaction

from .balance import open_places, stimulus_counts, target_counts
from .crowd import platform_worker_id
from .expiry import expire_stalled
from .labels import next_label_number
from .models import Rater, Session, Study

__all__ = ["EnrolmentCookie", "EnrolmentRefused", "enrol", "enrolment_cap", "enrolment_target", "normalise_worker_id",
           "rate_limited"]

WORKER_ID_MAX = 200


class EnrolmentRefused(Exception):
    """Enrolment that changes nothing; ``message`` is shown to the worker, ``status`` is HTTP."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.message, self.status = message, status


def normalise_worker_id(value: str) -> str:
    """NFKC (full-width and compatibility forms), whitespace collapsed and trimmed, case folded."""
    return " ".join(unicodedata.normalize("NFKC", value).split()).casefold()


class EnrolmentCookie:
    """The signed cookie that binds an enrolled worker to the browser that enrolled them.

    One cookie per study; its value is the rater's token, signed (with one salt, here) so that no
    client can make one for a rater it does not already hold the link of.
    """

    salt = "ratings.enrolment"
    max_age = 90 * 24 * 3600

    def name(self, study: Study) -> str:
        return f"sr_enrolled_{study.pk}"

    def make_token(self, rater: Rater) -> str:
        return signing.dumps(rater.token, salt=self.salt, compress=False)

    def set(self, response, rater: Rater) -> None:
        # MTurk shows the study in a frame of its own site, where only a SameSite=None cookie (which
        # browsers take only when Secure) is sent; every other study keeps Lax.
        secure = settings.SESSION_COOKIE_SECURE
        crowd = rater.study.crowd
        framed = secure and crowd is not None and crowd.platform == "mturk"
        response.set_cookie(self.name(rater.study), self.make_token(rater), max_age=self.max_age, httponly=True,
                            samesite="None" if framed else "Lax", secure=secure)

    def read(self, request, study: Study) -> str | None:
        return self.check_token(request.COOKIES.get(self.name(study)))

    def check_token(self, value: str | None) -> str | None:
        """The rater token the cookie holds, or None when absent, forged or expired."""
        if not value:
            return None
        try:
            return str(signing.loads(value, salt=self.salt, max_age=self.max_age))
        except signing.BadSignature:
            return None


def enrolment_target(study: Study) -> int:
    """The completed sessions the study wants: ``raters`` from the study file or, for a balanced
    design, the raters needed to give every stimulus ``ratings_per_stimulus`` ratings (0: none)."""
    target = study.raters_target
    if not target and study.assignment == Study.Assignment.BALANCED and study.items_per_rater:
        rated = stimulus_counts(study).count()  # made test stimuli (a failed one is never rated)
        target = math.ceil(rated * study.ratings_per_stimulus / study.items_per_rater)
    return target or 0


def enrolment_cap(study: Study) -> int:
    """How many open raters that can still finish the study holds: ``SR_ENROLMENT_CAP_FACTOR`` x its
    target; a study without a target takes no open enrolment."""
    return math.floor(enrolment_target(study) * settings.SR_ENROLMENT_CAP_FACTOR)


def _can_finish(study: Study):
    """The study's open raters whose session is not gone (expired or screened out): live, complete, or
    joined and not yet consented (expiry ends those after ``stall_minutes``, :mod:`ratings.expiry`)."""
    return study.raters.filter(source=Rater.Source.OPEN).exclude(session__state__in=Session.GONE_STATES)


def rate_limited(address: str) -> bool:
    """Count one enrolment attempt from ``address``; True once it made too many in this window.

    A fixed window in Django's cache (a shared one, Redis, in production: see ``CACHE_URL``):
    ``cache.add`` starts the window's counter and ``cache.incr`` is atomic, so concurrent workers
    count together.
    """
    limit, window = settings.SR_ENROLMENT_RATE
    key = f"ratings:enrol:{address}:{int(time.time() // window)}"
    cache.add(key, 0, timeout=window + 1)
    try:
        return cache.incr(key) > limit
    except ValueError:  # evicted between add and incr: count afresh
        cache.set(key, 1, timeout=window + 1)
        return False


def enrol(study: Study, worker_id: str, *, address: str | None = None, returning_token: str | None = None,
          platform_ids: dict | None = None) -> Rater:
    """The rater of crowd worker ``worker_id``, created on their first enrolment.

    Parameters
    ----------
    worker_id : normalised here (:func:`normalise_worker_id`), with the platform's name in front for a
        crowd study (``[crowd]``).
    address : the client's address, for the rate limit (None: not limited, e.g. a command).
    returning_token : the rater token from this browser's enrolment cookie, if any.
    platform_ids : the platform's other ids from the arrival URL (``STUDY_ID``, ``assignmentId``,
        ...), stored with the rater; a returning worker's newer values replace the old.

    Raises
    ------
    EnrolmentRefused
        Too many attempts from the address, an empty or too long id, a closed study, a study whose
        completed sessions reached its target or whose open raters reached the cap, or a worker id
        that enrolled from another browser (whose link is never handed out again).
    """
    external_id = normalise_worker_id(worker_id)
    if external_id and study.crowd is not None:
        external_id = platform_worker_id(study.crowd.platform, external_id)
    existing = Rater.objects.filter(study=study, external_id=external_id).first() if external_id else None
    if existing is not None and returning_token == existing.token:
        expire_stalled(study)  # a stalled worker coming back is shown their exit
        return _returning(existing, platform_ids)  # never refused at the door, over or not
    if address is not None and rate_limited(address):
        minutes = math.ceil(settings.SR_ENROLMENT_RATE[1] / 60)
        raise EnrolmentRefused(f"Too many attempts to join from your network. Nothing was stored; please try "
                               f"again in {minutes} minutes.", 429)
    if not external_id or len(external_id) > WORKER_ID_MAX:
        raise EnrolmentRefused(f"Please give your worker id (at most {WORKER_ID_MAX} characters).", 400)
    if study.state == Study.State.CLOSED:
        raise EnrolmentRefused("This study is closed and takes no new raters.", 410)
    expire_stalled(study)  # stalled sessions give their items back (after the rate limit: it writes)
    if existing is None:
        try:
            return _create(study, external_id, platform_ids or {})
        except IntegrityError:  # the same worker id enrolled concurrently (a double click)
            existing = Rater.objects.filter(study=study, external_id=external_id).first()
            if existing is None:
                raise  # another constraint: a real error, not a duplicate enrolment
        if returning_token == existing.token:
            return existing
    raise EnrolmentRefused(
        "This worker id has already joined this study from another browser. Please continue in the "
        "browser you started in, or with the personal link you were given there; for help, contact "
        "the researchers through the crowd platform.", 409)


def _returning(rater: Rater, platform_ids: dict | None) -> Rater:
    """A worker back in their own browser; MTurk may give a new assignment id, which the exit needs."""
    merged = {**rater.platform_ids, **(platform_ids or {})}
    if merged != rater.platform_ids:
        rater.platform_ids = merged
        rater.save(update_fields=["platform_ids"])
    return rater


def _create(study: Study, external_id: str, platform_ids: dict) -> Rater:
    with transaction.atomic():
        Study.objects.select_for_update().get(pk=study.pk)  # serialise label numbering, target and cap
        target = study.raters_target  # a balanced design without one closes on top-up's count, below
        if target and Session.objects.filter(rater__study=study, state=Session.State.COMPLETE).count() >= target:
            raise EnrolmentRefused(f"This study has all the completed sessions it needs ({target}) and takes no "
                                   "new raters. Thank you for your interest!", 410)
        if study.assignment == Study.Assignment.BALANCED and not study.is_paired:
            # Items are drawn at consent: the places left must exceed what the workers who joined and
            # have not consented yet will take, or the newcomer would find nothing at consent.
            waiting = study.raters.filter(source=Rater.Source.OPEN, session__state=Session.State.CONSENT).count()
            if open_places(study) <= waiting * study.items_per_rater:
                if target_counts(study)["ratings_missing"] == 0:
                    raise EnrolmentRefused("This study has all the ratings it needs and takes no new raters. Thank "
                                           "you for your interest!", 410)
                raise EnrolmentRefused("Every image of this study is with a worker right now, so there is nothing "
                                       "to give you. Nothing was stored; please return this study on the platform.",
                                       410)
        if _can_finish(study).count() >= enrolment_cap(study):
            raise EnrolmentRefused("This study has all the raters it needs and takes no more. Thank you for "
                                   "your interest!", 410)
        n = next_label_number(study, "w")  # not a count: that reuses a label after a deletion
        rater = Rater.objects.create(study=study, label=f"w{n:04d}", source=Rater.Source.OPEN,
                                     external_id=external_id, platform_ids=platform_ids)
        Session.objects.create(rater=rater)
        return rater
