"""Evaluating an upscaling method on a test set: per-image PSNR-Y / SSIM-Y, mean, CSV, SR images."""

from __future__ import annotations

import csv
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import torch

from .datasets import Dataset
from .images import FILE_MODE, write_png
from .metrics import psnr_ssim_y

__all__ = ["ImageScore", "evaluate_dataset", "write_scores_csv", "mean_scores", "CSV_HEADER"]

CSV_HEADER = ("image", "psnr_y", "ssim_y")


@dataclass(frozen=True)
class ImageScore:
    image: str
    psnr_y: float
    ssim_y: float


def evaluate_dataset(
    dataset: Dataset,
    upscale: Callable[[torch.Tensor], torch.Tensor],
    *,
    border: int | None = None,
    save_dir: str | Path | None = None,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> list[ImageScore]:
    """Upscale every LR image of ``dataset`` and score it against HR on Y.

    Parameters
    ----------
    upscale : callable, uint8 (C, H, W) -> uint8 (C, s*H, s*W)
    border : pixels shaved at each side before scoring; default the scale factor (4), the
        convention of every SR table since SRCNN.
    save_dir : write each SR image there as PNG, named like its HR file.
    progress : wraps the iteration over pairs (e.g. ``tqdm``).
    """
    border = dataset.scale if border is None else border
    save_path = Path(save_dir) if save_dir else None
    pairs = progress(dataset.pairs) if progress else dataset.pairs
    scores = []
    for pair in pairs:
        hr, lr = pair.load()
        sr = upscale(lr)
        if sr.shape != hr.shape:
            raise ValueError(f"{pair.name}: the method returned {tuple(sr.shape)} for HR {tuple(hr.shape)}")
        p, s = psnr_ssim_y(sr, hr, border)
        scores.append(ImageScore(pair.name, float(p), float(s)))
        if save_path is not None:
            write_png(sr, save_path / pair.hr_path.name)
    return scores


def mean_scores(scores: list[ImageScore]) -> ImageScore:
    """Mean of per-image PSNR and SSIM (the published convention: PSNR averaged in dB)."""
    if not scores:
        raise ValueError("no scores to average")
    return ImageScore(
        "mean",
        math.fsum(s.psnr_y for s in scores) / len(scores),
        math.fsum(s.ssim_y for s in scores) / len(scores),
    )


def write_scores_csv(scores: list[ImageScore], path: str | Path) -> Path:
    """CSV ``image,psnr_y,ssim_y``, one row per image, full precision, atomically; no mean row."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.fchmod(fd, FILE_MODE)
    with os.fdopen(fd, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_HEADER)
        for s in scores:
            writer.writerow([s.image, repr(s.psnr_y), repr(s.ssim_y)])
    os.replace(tmp, path)
    return path
