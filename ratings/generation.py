"""The claim protocol: what a task does with one stimulus, safely, however often it is delivered.

``generate_stimulus`` is the body of ``ratings.tasks.generate_stimulus_task``; the image itself is
made by ``ratings.stimulus_images``. It is idempotent (a finished stimulus is left alone) and records
a clear error on the stimulus for bad input instead of raising, so one corrupt file never stops a
study. A redelivered message (a worker died mid-task) carries the same task id and simply redoes the
work, up to ``MAX_ATTEMPTS`` deaths; a message whose task id was superseded by a later enqueue
(``ratings.dispatch``) is ignored, and every state change is conditional on the claim (task id) seen
at the start, so a worker that lost its claim never overwrites what the new claimant recorded.
"""

from __future__ import annotations

import logging
import socket
import time

from django.utils import timezone

from . import stimulus_images
from .models import Stimulus, Study
from .stimulus_files import equalise_lengths

__all__ = ["MAX_ATTEMPTS", "failed_stimuli", "generate_stimulus", "mark_failed", "refresh_study_state"]

log = logging.getLogger(__name__)

# A stimulus whose worker died this many times in one claim (out of memory, killed) is marked failed
# instead of being redelivered forever; ``run_study --retry`` claims it afresh.
MAX_ATTEMPTS = 3


def generate_stimulus(stimulus_id: int, task_id: str | None = None, worker: str | None = None,
                      retries: int = 0) -> str:
    """Make one stimulus's file and metrics. Returns the stimulus's final state.

    Safe to call any number of times, from any number of workers. ``retries`` is how many of the
    earlier starts of this task ended in an exception that Celery retried; every other earlier start
    that left the stimulus running was a worker that died, and after ``MAX_ATTEMPTS`` of those the
    stimulus is marked failed instead of being made again.
    """
    stimulus = Stimulus.objects.select_related("study", "image__dataset", "condition").get(pk=stimulus_id)
    if stimulus.state == Stimulus.State.DONE:
        return stimulus.state
    if task_id and stimulus.task_id and stimulus.task_id != task_id:
        log.info("stimulus %s: task %s superseded by %s; skipping", stimulus_id, task_id, stimulus.task_id)
        return stimulus.state
    if task_id and stimulus.state == Stimulus.State.FAILED:
        return stimulus.state  # this task already concluded (a duplicate delivery); --retry makes a new claim
    # Every update below is conditional on the claim seen now: a worker whose claim was taken over
    # (run_study --retry) must not overwrite the new claimant's state.
    mine = Stimulus.objects.filter(pk=stimulus_id, task_id=stimulus.task_id).exclude(state=Stimulus.State.DONE)
    deaths = stimulus.attempts - retries
    if stimulus.state == Stimulus.State.RUNNING and deaths >= MAX_ATTEMPTS:
        error = (f"the worker making it died {deaths} times (last on {stimulus.worker or 'an unknown host'}; out of "
                 f"memory or killed?): see the worker logs, then rerun with --retry")
        _mark_failed(mine, stimulus, error)
        log.error("stimulus %s: %s", stimulus_id, error)
        return Stimulus.State.FAILED
    worker = worker or socket.gethostname()
    started = time.perf_counter()
    if not mine.update(state=Stimulus.State.RUNNING, worker=worker, started_at=timezone.now(),
                       attempts=stimulus.attempts + 1):
        return Stimulus.objects.get(pk=stimulus_id).state  # finished or claimed by another task meanwhile
    try:
        made = stimulus_images.make_stimulus_file(stimulus)
    except stimulus_images.BAD_INPUT_ERRORS as exc:
        _mark_failed(mine, stimulus, str(exc))
        log.warning("stimulus %s failed: %s", stimulus_id, exc)
        return Stimulus.State.FAILED
    done = mine.update(state=Stimulus.State.DONE, error="", seconds=time.perf_counter() - started,
                       finished_at=timezone.now(), **made)
    refresh_study_state(stimulus.study_id)  # outside a transaction: it may rewrite files (padding)
    return Stimulus.State.DONE if done else Stimulus.objects.get(pk=stimulus_id).state


def _mark_failed(claimed, stimulus: Stimulus, error: str) -> bool:
    """Record a failure through the caller's claim-guarded queryset; refresh the study's state."""
    updated = claimed.update(state=Stimulus.State.FAILED, error=error, finished_at=timezone.now())
    refresh_study_state(stimulus.study_id)
    return bool(updated)


def mark_failed(stimulus_id: int, task_id: str, error: str) -> bool:
    """Mark a stimulus failed if ``task_id`` still holds its claim (a task's last failure)."""
    stimulus = Stimulus.objects.filter(pk=stimulus_id).only("study_id").first()
    if stimulus is None:
        return False
    claimed = Stimulus.objects.filter(pk=stimulus_id, task_id=task_id).exclude(state=Stimulus.State.DONE)
    return _mark_failed(claimed, stimulus, error)


def refresh_study_state(study_id: int, *, accept_failures: bool = False) -> str:
    """Open a study to raters once every stimulus is made; returns the study's state.

    A study with failed stimuli stays 'generating' (``progress`` reports it as incomplete): raters
    would otherwise rate a design with holes in it without anyone deciding so. ``accept_failures``
    is that decision (``run_study --accept-failures``): the study opens and sessions leave the failed
    stimuli out. Nothing changes while any stimulus is still pending, queued or running.
    """
    stimuli = Stimulus.objects.filter(study_id=study_id)
    busy = stimuli.exclude(state__in=[Stimulus.State.DONE, Stimulus.State.FAILED]).exists()
    opening = Study.objects.filter(pk=study_id, state=Study.State.GENERATING)
    if not busy and (accept_failures or not stimuli.filter(state=Stimulus.State.FAILED).exists()) and opening.exists():
        equalise_lengths(study_id)  # before any rater sees a file (its Content-Length ranks the methods)
        opening.update(state=Study.State.READY)
    return Study.objects.filter(pk=study_id).values_list("state", flat=True).first()


def failed_stimuli(study: Study) -> list[str]:
    """'dataset/image [method]' of every failed stimulus: what sessions leave out."""
    rows = (Stimulus.objects.filter(study=study, state=Stimulus.State.FAILED)
            .order_by("image__dataset__position", "image__name", "condition__position")
            .values_list("image__dataset__name", "image__name", "condition__name"))
    return [f"{d}/{i} [{m}]" for d, i, m in rows]
