"""Making stimulus files: the work a Celery task does, and the enqueueing that hands it out.

``generate_stimulus`` is idempotent (a finished stimulus is left alone), writes its file atomically
(temporary name, then rename; temporaries of a killed earlier attempt are removed) and records a
clear error on the stimulus for bad input instead of raising, so one corrupt file never stops a
study. A redelivered message (a worker died mid-task) carries the same task id and simply redoes the
work; a message whose task id was superseded by a later enqueue is ignored.
"""

from __future__ import annotations

import logging
import socket
import time
import uuid
from pathlib import Path
from typing import Callable

import torch
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from sr_models.datasets import DatasetError
from sr_models.images import ImageError, read_image, write_png
from sr_models.inference import WeightsError, pick_device, sha256_file
from sr_models.lpips import lpips
from sr_models.methods import get_upscaler
from sr_models.metrics import psnr_ssim_y
from sr_models.resize import make_lr

from .models import Condition, Stimulus, Study
from .study_file import external_folder_for, ExternalMethod, _image_files

__all__ = [
    "BAD_INPUT_ERRORS",
    "generate_stimulus",
    "enqueue_pending",
    "release_claims",
    "stimulus_path",
    "refresh_study_state",
    "tasks_run_in_process",
]

log = logging.getLogger(__name__)

# Errors that no retry can fix: recorded on the stimulus, which is marked failed.
BAD_INPUT_ERRORS = (ImageError, DatasetError, WeightsError, FileNotFoundError, ValueError)


def stimulus_path(stimulus: Stimulus) -> str:
    """Relative path under MEDIA_ROOT; readable for researchers, never shown to raters."""
    image = stimulus.image
    return f"studies/{stimulus.study.name}/{image.dataset.name}/{stimulus.condition.name}/{image.name}.png"


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
    folder = external_folder_for(ext, stimulus.image.dataset.name, n_datasets)
    path = _image_files(folder).get(stimulus.image.name)
    if path is None:
        raise FileNotFoundError(f"external method {condition.name!r}: no image for {stimulus.image.name} in {folder}")
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


def _remove_stale_temporaries(target: Path) -> None:
    # write_png's temporaries are ".<name>.<random>.tmp"; a worker killed mid-write leaves one.
    for tmp in target.parent.glob(f".{target.name}.*.tmp"):
        tmp.unlink(missing_ok=True)


def generate_stimulus(stimulus_id: int, task_id: str | None = None, worker: str | None = None) -> str:
    """Make one stimulus's file and metrics. Returns the stimulus's final state.

    Safe to call any number of times, from any number of workers.
    """
    stimulus = Stimulus.objects.select_related("study", "image__dataset", "condition").get(pk=stimulus_id)
    if stimulus.state == Stimulus.State.DONE:
        return stimulus.state
    if task_id and stimulus.task_id and stimulus.task_id != task_id:
        log.info("stimulus %s: task %s superseded by %s; skipping", stimulus_id, task_id, stimulus.task_id)
        return stimulus.state
    worker = worker or socket.gethostname()
    started = time.perf_counter()
    Stimulus.objects.filter(pk=stimulus_id).exclude(state=Stimulus.State.DONE).update(
        state=Stimulus.State.RUNNING, worker=worker, started_at=timezone.now(), attempts=stimulus.attempts + 1
    )
    relative = stimulus_path(stimulus)
    target = Path(settings.MEDIA_ROOT) / relative
    try:
        image, hr = _make(stimulus)
        _remove_stale_temporaries(target)
        write_png(image, target)
        metrics = {}
        if stimulus.condition.kind != Condition.Kind.REFERENCE:
            border = stimulus.study.scale
            p, s = psnr_ssim_y(image, hr, border)
            metrics = dict(psnr_y=float(p), ssim_y=float(s))
            if settings.SR_COMPUTE_LPIPS:
                metrics["lpips"] = float(lpips(image, hr, border, device=pick_device(settings.SR_DEVICE)))
    except BAD_INPUT_ERRORS as exc:
        Stimulus.objects.filter(pk=stimulus_id).exclude(state=Stimulus.State.DONE).update(
            state=Stimulus.State.FAILED, error=str(exc), finished_at=timezone.now()
        )
        log.warning("stimulus %s failed: %s", stimulus_id, exc)
        return Stimulus.State.FAILED
    with transaction.atomic():
        Stimulus.objects.filter(pk=stimulus_id).exclude(state=Stimulus.State.DONE).update(
            state=Stimulus.State.DONE, file=relative, sha256=sha256_file(target), height=image.shape[1],
            width=image.shape[2], error="", device=str(pick_device(settings.SR_DEVICE))
            if stimulus.condition.kind == Condition.Kind.NETWORK else "cpu",
            seconds=time.perf_counter() - started, finished_at=timezone.now(), **metrics,
        )
        refresh_study_state(stimulus.study_id)
    return Stimulus.State.DONE


def release_claims(claims: list[tuple[int, str]]) -> int:
    """Return unfinished claimed stimuli to 'pending' (an in-process run interrupted with Ctrl-C)."""
    released = 0
    for stimulus_id, task_id in claims:
        released += Stimulus.objects.filter(
            pk=stimulus_id, task_id=task_id, state__in=[Stimulus.State.QUEUED, Stimulus.State.RUNNING]
        ).update(state=Stimulus.State.PENDING, task_id="")
    return released


def refresh_study_state(study_id: int) -> None:
    """A study whose stimuli are all made (none pending, queued or running) is ready for raters."""
    busy = Stimulus.objects.filter(study_id=study_id).exclude(state__in=[Stimulus.State.DONE, Stimulus.State.FAILED])
    if not busy.exists():
        Study.objects.filter(pk=study_id, state=Study.State.GENERATING).update(state=Study.State.READY)


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
        claimed = Stimulus.objects.filter(pk=stimulus.pk, state=stimulus.state, task_id=stimulus.task_id).update(
            state=Stimulus.State.QUEUED, task_id=task_id, error=""
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
