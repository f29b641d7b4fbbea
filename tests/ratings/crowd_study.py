"""The balanced crowd study of the expiry and top-up tests, and what its workers do (no tests here)."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from ratings import enrolment, expiry, sessions
from ratings.models import Session

from .conftest import ready_study

CROWD_STUDY = """
name = "crowd"
seed = 5
datasets = ["Set5"]
methods = ["nearest", "bicubic", "hr"]

[rating]
calibration_images = 0
assignment = "balanced"
ratings_per_stimulus = 2
items_per_rater = 5

[crowd]
platform = "generic"
worker_param = "worker_id"
completion_url = "https://example.org/done?cc={code}"
stall_minutes = 10
"""

STALL = timedelta(minutes=10)


def make_crowd_study(datasets_root):
    """15 Set5 stimuli, 2 ratings each, 5 per worker; sessions stall after 10 minutes."""
    return ready_study(CROWD_STUDY, datasets_root)


def worker(study, worker_id):
    """An enrolled worker who gave consent (their items drawn)."""
    rater = enrolment.enrol(study, worker_id)
    sessions.start_session(rater, device_pixel_ratio=1.0, viewport="1366x768")
    rater.refresh_from_db()
    return rater


def rate_current(rater, score=3):
    session = Session.objects.get(rater=rater)
    return sessions.record_rating(rater, sessions.item_token(sessions.current_item(session)), score, 900)


def idle_since(rater, when):
    Session.objects.filter(rater=rater).update(last_active_at=when)


def one_session_of_each_state(study) -> dict:
    """Five workers: one enrolled only, one rating (1 of 5 rated), one complete, one expired after 2
    ratings, one screened out after 1; returns them by state."""
    made = {"not_started": enrolment.enrol(study, "enrolled-only")}
    made["complete"] = worker(study, "finished")
    while Session.objects.get(rater=made["complete"]).state != Session.State.COMPLETE:
        rate_current(made["complete"])
    for state, ratings in (("in_progress", 1), ("expired", 2), ("screened_out", 1)):
        made[state] = worker(study, state)
        for _ in range(ratings):
            rate_current(made[state])
    idle_since(made["expired"], timezone.now() - 2 * STALL)
    assert expiry.expire_stalled(study) == 1
    Session.objects.filter(rater=made["screened_out"]).update(state=Session.State.SCREENED_OUT,
                                                             end_reason="failed the attention checks")
    return made
