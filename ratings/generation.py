"""Making stimulus files: the work a Celery task does, and the enqueueing that hands it out.

``generate_stimulus`` is idempotent (a finished stimulus is left alone), writes its file atomically
(temporary name, then rename; temporaries left by a killed earlier attempt are removed once they are
stale) and records a clear error on the stimulus for bad input instead of raising, so one corrupt
file never stops a study. A redelivered message (a worker died mid-task) carries the same task id
and simply redoes the work, up to ``MAX_ATTEMPTS`` deaths; a message whose task id was superseded by
a later enqueue is ignored, and every state change is conditional on the claim (task id) seen at
the start, so a worker that lost its claim never overwrites what the new claimant recorded.
"""

from __future__ import annotations

import logging
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import torch
from django.conf import settings
from django.utils import timezone

from sr_models.datasets import DatasetError
from sr_models.dists import dists
from sr_models.images import ImageError, read_image, write_png
from sr_models.inference import WeightsError, pick_device, sha256_file
from sr_models.lpips import lpips
from sr_models.methods import get_upscaler
from sr_models.metrics import psnr_ssim_y
from sr_models.niqe import BLOCK_SIZE, niqe
from sr_models.resize import make_lr

from .models import Condition, Stimulus, Study
from .stimulus_files import equalise_lengths, media_file, stimulus_path
from .study_file import ExternalMethod, _image_files, external_folder_for

__all__ = [
    "BAD_INPUT_ERRORS",
    "MAX_ATTEMPTS",
    "STALE_TEMPORARY_SECONDS",
    "enqueue_pending",
    "failed_stimuli",
    "generate_stimulus",
    "mark_failed",
    "refresh_study_state",
    "release_claims",
    "stimulus_path",
    "tasks_run_in_process",
]

log = logging.getLogger(__name__)

# Errors that no retry can fix: recorded on the stimulus, which is marked failed. FileNotFoundError
# is deliberately absent: a missing input is reported as ImageError/DatasetError naming the file, and
# any other vanished file (our own temporary) is an internal error that the task retries.
BAD_INPUT_ERRORS = (ImageError, DatasetError, WeightsError, ValueError)

# A stimulus whose worker died this many times in one claim (out of memory, killed) is marked failed
# instead of being redelivered forever; ``run_study --retry`` claims it afresh.
MAX_ATTEMPTS = 3

# A temporary file younger than this may belong to a worker still writing it (Redis redelivers a
# task after the visibility timeout even when its first worker is alive), so only older ones go.
STALE_TEMPORARY_SECONDS = 3600


def _source_images(stimulus: Stimulus) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(HR, LR) of the stimulus's image; LR is made from HR when the dataset has no LR files."""
    image = stimulus.image
    hr = read_image(image.hr_path)
    if image.lr_path:
        lr = read_image(image.lr_path)
        if tuple(hr.shape[1:]) != (lr.shape[1] * stimulus.study.scale, lr.shape[2] * stimulus.study.scale):
            raise ImageError(image.hr_path, f"HR is not {stimulus.study.scale}x its LR {image.lr_path}")
        return hr, lr
    hr, lr = make_lr(hr, stimulus.study.scale)
    return hr, lr


def _external_image(stimulus: Stimulus, hr: torch.Tensor) -> torch.Tensor:
    condition = stimulus.condition
    ext = ExternalMethod(condition.name, Path(condition.external_dir))
    n_datasets = stimulus.study.datasets.filter(role="test").count()
    try:
        folder = external_folder_for(ext, stimulus.image.dataset.name, n_datasets)
        path = _image_files(folder).get(stimulus.image.name)
    except FileNotFoundError as exc:  # the folder went away after the study file was checked
        raise DatasetError(f"external method {condition.name!r}: {exc}") from None
    if path is None:
        raise DatasetError(f"external method {condition.name!r}: no image for {stimulus.image.name} in {folder} "
                           f"(expected a file named like {stimulus.image.name}*.png)")
    sr = read_image(path)
    if sr.shape[0] == 3 and hr.shape[0] == 1:
        if not (torch.equal(sr[0], sr[1]) and torch.equal(sr[1], sr[2])):
            raise ImageError(path, f"is colour but the HR image {stimulus.image.name} is grayscale")
        sr = sr[:1]
    if sr.shape != hr.shape:
        raise ImageError(path, f"is {sr.shape[2]}x{sr.shape[1]} with {sr.shape[0]} channel(s); HR is "
                               f"{hr.shape[2]}x{hr.shape[1]} with {hr.shape[0]}")
    return sr


def _make(stimulus: Stimulus) -> tuple[torch.Tensor, torch.Tensor]:
    """The stimulus image and its HR reference, both uint8 (C, H, W)."""
    hr, lr = _source_images(stimulus)
    condition = stimulus.condition
    if condition.kind == Condition.Kind.REFERENCE:
        return hr, hr
    if condition.kind == Condition.Kind.EXTERNAL:
        return _external_image(stimulus, hr), hr
    upscaler = get_upscaler(condition.name, scale=stimulus.study.scale, weights_dir=settings.SR_WEIGHTS_DIR,
                            device=settings.SR_DEVICE)
    return upscaler(lr), hr


def stale_temporary_seconds() -> float:
    """Age after which a temporary is surely abandoned: at least the broker's visibility timeout."""
    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", None) or {}
    return max(STALE_TEMPORARY_SECONDS, float(options.get("visibility_timeout", 0)))


def _remove_stale_temporaries(target: Path) -> None:
    """Remove temporaries of killed workers, never those a live worker may still be writing.

    write_png's temporaries are ".<name>.<random>.tmp"; a worker killed mid-write leaves one.
    """
    cutoff = time.time() - stale_temporary_seconds()
    for tmp in target.parent.glob(f".{target.name}.*.tmp"):
        try:
            if tmp.stat().st_mtime < cutoff:
                tmp.unlink(missing_ok=True)
        except FileNotFoundError:
            pass  # removed meanwhile (renamed by its writer, or cleaned by another worker)


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
    relative = stimulus_path(stimulus)
    try:
        target = media_file(relative)
        image, hr = _make(stimulus)
        _remove_stale_temporaries(target)
        write_png(image, target)
        metrics = {}
        if stimulus.condition.kind != Condition.Kind.REFERENCE:
            border = stimulus.study.scale
            p, s = psnr_ssim_y(image, hr, border)
            metrics = {"psnr_y": float(p), "ssim_y": float(s)}
            if settings.SR_COMPUTE_LPIPS:
                metrics["lpips"] = float(lpips(image, hr, border, device=pick_device(settings.SR_DEVICE)))
                metrics["dists"] = float(dists(image, hr, border, device=pick_device(settings.SR_DEVICE)))
        if settings.SR_COMPUTE_LPIPS:
            # NIQE needs no reference, so HR gets one too (the naturalness raters' 5s are anchored to).
            metrics["niqe"] = niqe_or_none(image, stimulus.study.scale)
    except BAD_INPUT_ERRORS as exc:
        _mark_failed(mine, stimulus, str(exc))
        log.warning("stimulus %s failed: %s", stimulus_id, exc)
        return Stimulus.State.FAILED
    done = mine.update(
        state=Stimulus.State.DONE, file=relative, sha256=sha256_file(target), height=image.shape[1],
        width=image.shape[2], error="", device=str(pick_device(settings.SR_DEVICE))
        if stimulus.condition.kind == Condition.Kind.NETWORK else "cpu",
        seconds=time.perf_counter() - started, finished_at=timezone.now(), **metrics,
    )
    refresh_study_state(stimulus.study_id)  # outside a transaction: it may rewrite files (padding)
    return Stimulus.State.DONE if done else Stimulus.objects.get(pk=stimulus_id).state


def niqe_or_none(image: torch.Tensor, border: int) -> float | None:
    """NIQE of a stimulus, or None when it has no whole 96x96 block after the border (too small to score)."""
    if min(image.shape[-2:]) - 2 * border < BLOCK_SIZE:
        return None
    return niqe(image, border)


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


def release_claims(claims: list[tuple[int, str]]) -> int:
    """Return unfinished claimed stimuli to 'pending' (an in-process run interrupted with Ctrl-C)."""
    released = 0
    for stimulus_id, task_id in claims:
        released += Stimulus.objects.filter(
            pk=stimulus_id, task_id=task_id, state__in=[Stimulus.State.QUEUED, Stimulus.State.RUNNING]
        ).update(state=Stimulus.State.PENDING, task_id="")
    return released


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


def tasks_run_in_process() -> bool:
    """True when no broker is configured and tasks execute eagerly in the calling process."""
    from mos_site.celery import app

    return bool(app.conf.task_always_eager)


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
    from .tasks import generate_stimulus_task

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
