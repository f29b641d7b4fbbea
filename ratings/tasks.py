"""Celery tasks: each takes ids, calls one service, and handles only being a task.

The service is the claim protocol (``ratings.generation``); callers that send tasks import them
from here (``ratings.dispatch``), so nothing here imports a caller.
"""

from __future__ import annotations

from celery import Task, shared_task
from django.db import DatabaseError

from . import expiry, generation


class StimulusTask(Task):
    """Records an unexpected final failure on the stimulus, so no stimulus stays 'running' forever."""

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        # Only while this task still holds the claim; the study's state is refreshed like on any failure.
        generation.mark_failed(args[0], task_id, f"unexpected error after retries: {type(exc).__name__}: {exc}")


@shared_task(
    bind=True,
    base=StimulusTask,
    # Idempotent (see generation.generate_stimulus), so it is safe to acknowledge only after the work
    # and to have the broker redeliver it when the worker process dies mid-task.
    acks_late=True,
    reject_on_worker_lost=True,
    # Transient trouble (a database restart, a CUDA out-of-memory on a busy GPU) is retried a few
    # times; bad input is not an exception here: the service records it on the stimulus.
    autoretry_for=(DatabaseError, RuntimeError, OSError),
    max_retries=3,
    retry_backoff=2,
    retry_jitter=False,
)
def generate_stimulus_task(self, stimulus_id: int) -> str:
    worker = None if self.request.is_eager else self.request.hostname  # eager: the local host name
    # retries: earlier starts that ended in a retried exception, not in a dead worker (MAX_ATTEMPTS).
    return generation.generate_stimulus(stimulus_id, task_id=self.request.id, worker=worker,
                                        retries=self.request.retries or 0)


@shared_task(acks_late=True)
def expire_sessions() -> dict[str, int]:
    """Expire the stalled sessions of every crowd study that is not closed (``ratings.expiry``).

    Idempotent (a session expires once; a second run finds nothing), so redelivery does no harm.
    Enrolment already expires a study's stalled sessions before it hands out items, so this only
    keeps the dashboard's counts current while nobody enrols; schedule it every few minutes, with
    Celery beat::

        CELERY_BEAT_SCHEDULE = {"expire-sessions": {"task": "ratings.tasks.expire_sessions", "schedule": 300}}

    (``celery -A mos_site beat``), or without a broker from cron with the command
    (``*/5 * * * * python manage.py expire_sessions``).
    """
    return expiry.expire_all()
