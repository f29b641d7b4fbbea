"""The image of one stimulus: read its source images, run its method, write its file, measure it.

This is the work only; who may do it, and when, is the claim protocol's (``ratings.generation``).
Bad input (a damaged or missing image, unknown weights, an external image of the wrong size) raises
one of :data:`BAD_INPUT_ERRORS` naming the file; anything else is an internal error for the task to
retry. The file is written with ``write_png`` (a temporary name, then a rename), and temporaries a
killed worker left beside it are removed once they are surely abandoned.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from django.conf import settings

from sr_models.datasets import DatasetError
from sr_models.dists import dists
from sr_models.images import ImageError, read_image, write_png
from sr_models.inference import WeightsError, pick_device, sha256_file
from sr_models.lpips import lpips
from sr_models.methods import get_upscaler
from sr_models.metrics import psnr_ssim_y
from sr_models.niqe import BLOCK_SIZE, niqe
from sr_models.resize import make_lr

from .models import Condition, Stimulus
from .stimulus_files import media_file, stimulus_path
from .study_file import ExternalMethod, external_folder_for, image_files

__all__ = ["BAD_INPUT_ERRORS", "STALE_TEMPORARY_SECONDS", "make_stimulus_file", "niqe_or_none",
           "stale_temporary_seconds"]

# Errors that no retry can fix: recorded on the stimulus, which is marked failed. FileNotFoundError
# is deliberately absent: a missing input is reported as ImageError/DatasetError naming the file, and
# any other vanished file (our own temporary) is an internal error that the task retries.
BAD_INPUT_ERRORS = (ImageError, DatasetError, WeightsError, ValueError)

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
        path = image_files(folder).get(stimulus.image.name)
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


def niqe_or_none(image: torch.Tensor, border: int) -> float | None:
    """NIQE of a stimulus, or None when it has no whole 96x96 block after the border (too small to score)."""
    if min(image.shape[-2:]) - 2 * border < BLOCK_SIZE:
        return None
    return niqe(image, border)


def _metrics(stimulus: Stimulus, image: torch.Tensor, hr: torch.Tensor) -> dict[str, float | None]:
    """PSNR/SSIM (Y, ``scale`` pixels of border), LPIPS, DISTS against HR; NIQE for every stimulus."""
    metrics: dict[str, float | None] = {}
    border = stimulus.study.scale
    if stimulus.condition.kind != Condition.Kind.REFERENCE:
        p, s = psnr_ssim_y(image, hr, border)
        metrics = {"psnr_y": float(p), "ssim_y": float(s)}
        if settings.SR_COMPUTE_LPIPS:
            metrics["lpips"] = float(lpips(image, hr, border, device=pick_device(settings.SR_DEVICE)))
            metrics["dists"] = float(dists(image, hr, border, device=pick_device(settings.SR_DEVICE)))
    if settings.SR_COMPUTE_LPIPS:
        # NIQE needs no reference, so HR gets one too (the naturalness raters' 5s are anchored to).
        metrics["niqe"] = niqe_or_none(image, border)
    return metrics


def make_stimulus_file(stimulus: Stimulus) -> dict[str, object]:
    """Make the stimulus's image, write it to its file and measure it; returns the Stimulus fields to set.

    ``stimulus`` needs ``study``, ``image__dataset`` and ``condition`` loaded. The fields are ``file``,
    ``sha256``, ``height``, ``width``, ``device`` and the metrics; nothing is stored here.
    """
    relative = stimulus_path(stimulus)
    target = media_file(relative)
    image, hr = _make(stimulus)
    _remove_stale_temporaries(target)
    write_png(image, target)
    metrics = _metrics(stimulus, image, hr)
    device = str(pick_device(settings.SR_DEVICE)) if stimulus.condition.kind == Condition.Kind.NETWORK else "cpu"
    return {"file": relative, "sha256": sha256_file(target), "height": image.shape[1], "width": image.shape[2],
            "device": device, **metrics}
