"""Expiring stalled sessions, so that a crowd study's unrated items go back to the next worker.

A session that has not moved (consent, an answer) for longer than the study's ``[crowd]
stall_minutes`` is expired: its state becomes ``expired`` with the time and the reason in words.
Its stored ratings are kept and count; its unrated items stop counting (:mod:`ratings.balance`), so
the next enrolment is given them. A worker who comes back to an expired session is shown its exit
and can store nothing. A session idle for exactly ``stall_minutes`` is not expired yet. A worker who
joined and did not consent within ``stall_minutes`` is expired the same way (no items, but a place).

Expiry runs where it matters: before every enrolment into the study (so the newcomer gets the
returned items), and from the ``ratings.tasks.expire_sessions`` task or the ``expire_sessions``
command for deployments that schedule it (:func:`expire_all`), so that the dashboard's counts are
current even while nobody enrols.

The race with an answer arriving at the same moment: the update is one statement that re-checks
the state and the time in its WHERE clause, and the answer path locks the session row
(``select_for_update``) and re-reads the state under the lock. On PostgreSQL the update waits for
an answer holding the lock and then re-evaluates its WHERE on the answer's committed row (whose
``last_active_at`` is new, so it is not stalled any more); an answer arriving after the update
committed reads ``expired`` under its lock and is refused. On SQLite every writing transaction
takes the database's write lock at BEGIN (``transaction_mode = IMMEDIATE``), so the two run one
after the other. Either way exactly one of them wins.
"""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from .models import Rater, Session, Study

__all__ = ["expire_stalled", "expire_all", "crowd_studies", "LIVE_STATES"]

LIVE_STATES = Session.LIVE_STATES  # the states that expire when stalled (one home: the model)


def expire_stalled(study: Study, now: dt.datetime | None = None) -> int:
    """Expire the study's sessions idle for longer than its ``stall_minutes``; returns how many.

    Only crowd studies (a ``[crowd]`` table) expire sessions: a lab rater may pause for a day.
    """
    crowd = study.crowd
    if crowd is None:
        return 0
    now = now or timezone.now()
    cutoff = now - dt.timedelta(minutes=crowd.stall_minutes)
    # The study through a subquery on raters, not a join: an update with a join becomes
    # "WHERE id IN (SELECT ... FROM session ...)", whose inner scan PostgreSQL does not re-read when the
    # row changed under it, so an answer committed meanwhile would not save its session. Here state and
    # last_active_at are the updated row's own columns, re-checked on the row the answer left.
    raters = Rater.objects.filter(study=study).values("pk")
    stalled = Session.objects.filter(rater_id__in=raters, state__in=LIVE_STATES, last_active_at__lt=cutoff).update(
        state=Session.State.EXPIRED, ended_at=now,
        end_reason=f"no answer for more than {crowd.stall_minutes} minutes")
    # A worker who enrolled and never consented within the time holds no items but a place under the
    # enrolment cap: expired too, so the place is free and a late consent cannot exceed the cap.
    late = Rater.objects.filter(study=study, created_at__lt=cutoff).values("pk")
    never = Session.objects.filter(rater_id__in=late, state=Session.State.CONSENT).update(
        state=Session.State.EXPIRED, ended_at=now,
        end_reason=f"not started within {crowd.stall_minutes} minutes of joining")
    return stalled + never


def crowd_studies():
    """The studies whose sessions expire: run on a crowd platform and not closed."""
    return Study.objects.filter(config__has_key="crowd").exclude(state=Study.State.CLOSED).order_by("pk")


def expire_all(now: dt.datetime | None = None) -> dict[str, int]:
    """:func:`expire_stalled` for every crowd study that is not closed; returns expired per study name."""
    return {study.name: expire_stalled(study, now) for study in crowd_studies()}
