"""Expiring stalled sessions, so that a crowd study's unrated items go back to the next worker.

A session that has not moved (consent, an answer) for the study's ``[crowd] stall_minutes`` is
expired: its state becomes ``expired`` with the time and the reason in words. Its stored ratings are
kept and count; its unrated items stop counting (:mod:`ratings.balance`), so the next enrolment is
given them. A worker who comes back to an expired session is shown its exit and can store nothing.

Expiry runs where it matters: before every enrolment into the study (so the newcomer gets the
returned items), in ``study_status``, and from the ``expire_sessions`` task for deployments that
schedule it. The update is one statement that re-checks the state and the time, so a concurrent
answer either lands first (and the session is no longer stalled) or finds the session expired.
"""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from .models import Session, Study

__all__ = ["expire_stalled", "LIVE_STATES"]

#: The states of a session that is under way (consent given, not over).
LIVE_STATES = (Session.State.CALIBRATION, Session.State.RATING)


def expire_stalled(study: Study, now: dt.datetime | None = None) -> int:
    """Expire the study's sessions idle for longer than its ``stall_minutes``; returns how many.

    Only crowd studies (a ``[crowd]`` table) expire sessions: a lab rater may pause for a day.
    """
    crowd = study.crowd
    if crowd is None:
        return 0
    now = now or timezone.now()
    cutoff = now - dt.timedelta(minutes=crowd.stall_minutes)
    return Session.objects.filter(rater__study=study, state__in=LIVE_STATES, last_active_at__lt=cutoff).update(
        state=Session.State.EXPIRED, ended_at=now,
        end_reason=f"no answer for more than {crowd.stall_minutes} minutes")
