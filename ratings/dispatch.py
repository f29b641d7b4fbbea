"""Handing stimuli out to workers: claim each one that needs making, then send its task.

The caller imports the task (Celery's task guide), so this module imports ``ratings.tasks`` and
nothing in ``ratings`` imports it back: commands (``run_study``, ``import_ratings``) and tests call
it. Whether tasks run in the calling process is asked of the current Celery app, never of
``mos_site``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from celery import current_app

from .models import Stimulus, Study
from .tasks import generate_stimulus_task

__all__ = ["broker_url", "enqueue_pending", "release_claims", "tasks_run_in_process"]


def tasks_run_in_process() -> bool:
    """True when no broker is configured and tasks execute eagerly in the calling process."""
    return bool(current_app.conf.task_always_eager)


def broker_url() -> str:
    """Where tasks are sent when they do not run in-process."""
    return current_app.conf.broker_url


def enqueue_pending(study: Study, *, retry: bool = False, on_sent: Callable[[Stimulus], None] | None = None,
                    claims: list[tuple[int, str]] | None = None) -> int:
    """Send one task per stimulus that needs one; returns how many were sent.

    Stimuli are claimed atomically (``pending -> queued`` with a fresh task id), so concurrent callers
    never send the same stimulus twice. Tasks go out grouped by condition, so a worker meets each
    network's tasks together and loads it once (weights are cached per worker process).

    retry : also re-send failed stimuli and those queued or running under an earlier task (after a
        lost broker or a dead in-process run); their old messages, if ever delivered, are ignored.
    claims : if given, each claimed ``(stimulus id, task id)`` is appended before its task is sent,
        so an interrupted caller can hand its claims back (:func:`release_claims`).
    """
    states = [Stimulus.State.PENDING]
    if retry:
        states += [Stimulus.State.FAILED, Stimulus.State.QUEUED, Stimulus.State.RUNNING]
    sent = 0
    candidates = (
        Stimulus.objects.filter(study=study, state__in=states)
        .select_related("condition")
        .order_by("condition__position", "image__dataset__position", "image__name")
    )
    for stimulus in candidates:
        task_id = str(uuid.uuid4())
        # attempts restarts with each claim: MAX_ATTEMPTS counts the deaths of one task, so a stimulus
        # failed for dying workers can be retried once its cause is fixed.
        claimed = Stimulus.objects.filter(pk=stimulus.pk, state=stimulus.state, task_id=stimulus.task_id).update(
            state=Stimulus.State.QUEUED, task_id=task_id, error="", attempts=0
        )
        if not claimed:
            continue  # another run_study claimed it first
        if claims is not None:
            claims.append((stimulus.pk, task_id))
        generate_stimulus_task.apply_async(args=[stimulus.pk], task_id=task_id, queue=stimulus.condition.queue)
        sent += 1
        if on_sent:
            on_sent(stimulus)
    return sent


def release_claims(claims: list[tuple[int, str]]) -> int:
    """Return unfinished claimed stimuli to 'pending' (an in-process run interrupted with Ctrl-C)."""
    released = 0
    for stimulus_id, task_id in claims:
        released += Stimulus.objects.filter(
            pk=stimulus_id, task_id=task_id, state__in=[Stimulus.State.QUEUED, Stimulus.State.RUNNING]
        ).update(state=Stimulus.State.PENDING, task_id="")
    return released
