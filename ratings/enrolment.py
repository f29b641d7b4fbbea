"""Open enrolment: crowd workers join a study through its link, once each, within limits.

Every rule of joining lives here: what a worker id is (normalised, so ``CaseWorker``, ``caseworker``
and ``ｃａｓｅｗｏｒｋｅｒ`` are one person), how many may join (``SR_ENROLMENT_CAP_FACTOR`` times the
study's target), how often one address may try (``SR_ENROLMENT_RATE``), and who gets a returning
worker's link back: only the browser that enrolled them, which holds a signed cookie naming the rater
(:class:`EnrolmentCookie`). Anyone else typing a known worker id learns nothing of that rater.

The form's fields are plain parameters, so a crowd platform's own (``PROLIFIC_PID``, ``workerId``)
can fill it later; enrolment itself is always a POST (a GET only shows the form).
"""

from __future__ import annotations

import math
import time
import unicodedata

from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.db import IntegrityError, transaction

from .labels import next_label_number
from .models import Rater, Session, Study

__all__ = ["EnrolmentCookie", "EnrolmentRefused", "enrol", "enrolment_cap", "normalise_worker_id", "rate_limited"]

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
        response.set_cookie(self.name(rater.study), self.make_token(rater), max_age=self.max_age, httponly=True,
                            samesite="Lax", secure=settings.SESSION_COOKIE_SECURE)

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


def enrolment_cap(study: Study) -> int:
    """How many open enrolments the study takes: ``SR_ENROLMENT_CAP_FACTOR`` x its target raters.

    The target is ``raters`` from the study file or, for a balanced design, the raters needed to give
    every stimulus ``ratings_per_stimulus`` ratings; a study with neither takes no open enrolment.
    """
    target = study.raters_target
    if not target and study.assignment == Study.Assignment.BALANCED and study.items_per_rater:
        rated = study.stimuli.filter(image__dataset__role="test").count()
        target = math.ceil(rated * study.ratings_per_stimulus / study.items_per_rater)
    return math.floor(target * settings.SR_ENROLMENT_CAP_FACTOR)


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


def enrol(study: Study, worker_id: str, *, address: str | None = None, returning_token: str | None = None) -> Rater:
    """The rater of crowd worker ``worker_id``, created on their first enrolment.

    Parameters
    ----------
    worker_id : normalised here (:func:`normalise_worker_id`).
    address : the client's address, for the rate limit (None: not limited, e.g. a command).
    returning_token : the rater token from this browser's enrolment cookie, if any.

    Raises
    ------
    EnrolmentRefused
        Too many attempts from the address, an empty or too long id, a closed study, a study that
        reached its cap, or a worker id that enrolled from another browser (whose link is never
        handed out again).
    """
    if address is not None and rate_limited(address):
        minutes = math.ceil(settings.SR_ENROLMENT_RATE[1] / 60)
        raise EnrolmentRefused(f"Too many attempts to join from your network. Nothing was stored; please try "
                               f"again in {minutes} minutes.", 429)
    external_id = normalise_worker_id(worker_id)
    if not external_id or len(external_id) > WORKER_ID_MAX:
        raise EnrolmentRefused(f"Please give your worker id (at most {WORKER_ID_MAX} characters).", 400)
    if study.state == Study.State.CLOSED:
        raise EnrolmentRefused("This study is closed and takes no new raters.", 410)
    existing = Rater.objects.filter(study=study, external_id=external_id).first()
    if existing is None:
        try:
            existing = _create(study, external_id)
            return existing
        except IntegrityError:  # the same worker id enrolled concurrently (a double click)
            existing = Rater.objects.filter(study=study, external_id=external_id).first()
            if existing is None:
                raise  # another constraint: a real error, not a duplicate enrolment
    if returning_token != existing.token:
        raise EnrolmentRefused(
            "This worker id has already joined this study from another browser. Please continue in the "
            "browser you started in, or with the personal link you were given there; for help, contact "
            "the researchers through the crowd platform.", 409)
    return existing


def _create(study: Study, external_id: str) -> Rater:
    with transaction.atomic():
        Study.objects.select_for_update().get(pk=study.pk)  # serialise label numbering and the cap
        if study.raters.filter(source=Rater.Source.OPEN).count() >= enrolment_cap(study):
            raise EnrolmentRefused("This study has all the raters it needs and takes no more. Thank you for "
                                   "your interest!", 410)
        n = next_label_number(study, "w")  # not a count: that reuses a label after a deletion
        rater = Rater.objects.create(study=study, label=f"w{n:04d}", source=Rater.Source.OPEN, external_id=external_id)
        Session.objects.create(rater=rater)
        return rater
