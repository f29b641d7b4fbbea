"""Evaluating an upscaling method on a test set, or scoring a folder of images: per-image PSNR-Y /
SSIM-Y and, on request, LPIPS, DISTS and NIQE; means, CSV, SR images."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import torch

from .datasets import IMAGE_SUFFIXES, Dataset, image_name
from .dists import dists
from .files import atomic_write
from .images import read_image, write_png
from .lpips import lpips
from .metrics import psnr_ssim_y
from .niqe import niqe

__all__ = [
    "ImageScore",
    "METRICS",
    "METRIC_COLUMNS",
    "NO_REFERENCE_METRICS",
    "ScoringError",
    "parse_metrics",
    "score_image",
    "evaluate_dataset",
    "score_folder",
    "write_scores_csv",
    "mean_scores",
    "CSV_HEADER",
]

CSV_HEADER = ("image", "psnr_y", "ssim_y")
# What --metrics accepts, in the order of the CSV columns, and each one's column name.
METRICS = ("psnr", "ssim", "lpips", "dists", "niqe")
METRIC_COLUMNS = {"psnr": "psnr_y", "ssim": "ssim_y", "lpips": "lpips", "dists": "dists", "niqe": "niqe"}
NO_REFERENCE_METRICS = ("niqe",)


class ScoringError(ValueError):
    """Folders or images that cannot be scored, with the files named."""


@dataclass(frozen=True)
class ImageScore:
    """One image's scores. ``psnr_y`` / ``ssim_y`` are always there for a dataset (NaN when a folder is
    scored without references); ``extra`` holds the requested LPIPS, DISTS, NIQE by column name."""

    image: str
    psnr_y: float
    ssim_y: float
    extra: dict[str, float] = field(default_factory=dict)

    def value(self, column: str) -> float:
        return getattr(self, column) if column in ("psnr_y", "ssim_y") else self.extra[column]


def parse_metrics(text: str | Iterable[str]) -> tuple[str, ...]:
    """``'psnr,ssim,niqe'`` -> ``('psnr', 'ssim', 'niqe')`` in :data:`METRICS` order; unknown names refused."""
    names = [n.strip().lower() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    unknown = [n for n in names if n not in METRICS]
    if unknown or not names:
        raise ValueError(f"unknown metric(s) {', '.join(map(repr, unknown)) or '(none given)'}; choose from {','.join(METRICS)}")
    return tuple(m for m in METRICS if m in names)


def score_image(
    sr: torch.Tensor,
    hr: torch.Tensor | None,
    metrics: Iterable[str],
    *,
    border: int = 4,
    device: str | torch.device | None = "cpu",
) -> dict[str, float]:
    """The requested metrics of one uint8 image, keyed by column name (``psnr_y``, ..., ``niqe``).

    ``border`` pixels are removed at each side for every metric (the scale factor by convention).
    ``hr`` may be None when only no-reference metrics (NIQE) are asked for.
    """
    metrics = tuple(metrics)
    out: dict[str, float] = {}
    if hr is None:
        needing = [m for m in metrics if m not in NO_REFERENCE_METRICS]
        if needing:
            raise ValueError(f"{', '.join(needing)} compare with a reference image; only niqe needs none")
    elif sr.shape != hr.shape:
        raise ValueError(f"the image is {tuple(sr.shape)} and its reference {tuple(hr.shape)}")
    if "psnr" in metrics or "ssim" in metrics:
        p, s = psnr_ssim_y(sr, hr, border)
        if "psnr" in metrics:
            out["psnr_y"] = float(p)
        if "ssim" in metrics:
            out["ssim_y"] = float(s)
    if "lpips" in metrics:
        out["lpips"] = float(lpips(sr, hr, border, device=device))
    if "dists" in metrics:
        out["dists"] = float(dists(sr, hr, border, device=device))
    if "niqe" in metrics:
        out["niqe"] = niqe(sr, border)
    return out


def _image_score(name: str, values: dict[str, float]) -> ImageScore:
    extra = {k: v for k, v in values.items() if k not in ("psnr_y", "ssim_y")}
    return ImageScore(name, values.get("psnr_y", math.nan), values.get("ssim_y", math.nan), extra)


def evaluate_dataset(
    dataset: Dataset,
    upscale: Callable[[torch.Tensor], torch.Tensor],
    *,
    border: int | None = None,
    save_dir: str | Path | None = None,
    progress: Callable[[Iterable], Iterable] | None = None,
    metrics: Iterable[str] = ("psnr", "ssim"),
    device: str | torch.device | None = "cpu",
) -> list[ImageScore]:
    """Upscale every LR image of ``dataset`` and score it against HR.

    Parameters
    ----------
    upscale : callable, uint8 (C, H, W) -> uint8 (C, s*H, s*W)
    border : pixels shaved at each side before scoring; default the scale factor (4), the
        convention of every SR table since SRCNN.
    save_dir : write each SR image there as PNG, named like its HR file.
    progress : wraps the iteration over pairs (e.g. ``tqdm``).
    metrics : beyond PSNR-Y and SSIM-Y (always computed), any of 'lpips', 'dists', 'niqe'.
    device : where LPIPS and DISTS run.
    """
    border = dataset.scale if border is None else border
    wanted = tuple(dict.fromkeys(("psnr", "ssim") + parse_metrics(metrics)))
    save_path = Path(save_dir) if save_dir else None
    pairs = progress(dataset.pairs) if progress else dataset.pairs
    scores = []
    for pair in pairs:
        hr, lr = pair.load()
        sr = upscale(lr)
        if sr.shape != hr.shape:
            raise ValueError(f"{pair.name}: the method returned {tuple(sr.shape)} for HR {tuple(hr.shape)}")
        scores.append(_image_score(pair.name, score_image(sr, hr, wanted, border=border, device=device)))
        if save_path is not None:
            write_png(sr, save_path / pair.hr_path.name)
    return scores


def _images_by_name(folder: Path, what: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise ScoringError(f"{what} folder {folder} does not exist")
    found: dict[str, Path] = {}
    files = [p for p in sorted(folder.iterdir())
             if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")]
    # A benchmark folder (img_001_SRF_4_HR.png beside img_001_SRF_4_LR.png) is scored by its HR files.
    hr_names = {image_name(p) for p in files if _is_pair_file(p, "HR")}
    for path in files:
        name = image_name(path)
        if name in hr_names and _is_pair_file(path, "LR"):
            continue
        if name in found:
            raise ScoringError(f"{found[name].name} and {path.name} in {folder} have the same image name {name!r}")
        found[name] = path
    if not found:
        raise ScoringError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {what} folder {folder}")
    return found


def _is_pair_file(path: Path, kind: str) -> bool:
    return path.stem.upper().endswith(f"_{kind}")


def score_folder(
    folder: str | Path,
    reference: str | Path | None,
    metrics: Iterable[str] = METRICS,
    *,
    border: int = 4,
    device: str | torch.device | None = "cpu",
    progress: Callable[[Iterable], Iterable] | None = None,
) -> list[ImageScore]:
    """Score every image of ``folder`` against the same-named image of ``reference``.

    Names are matched as reports name images (:func:`sr_models.datasets.image_name`: the file stem up
    to ``_SRF`` or an ``_HR``/``_LR`` suffix), so ``img_001_SRF_4_SRGAN.png`` meets
    ``img_001_SRF_4_HR.png``, and the file types may differ (PNG, BMP, TIFF, JPEG). In a folder of
    benchmark pairs the ``_LR`` files are skipped, so a dataset folder serves as ``reference`` as it
    is. Without ``reference`` only NIQE can be computed.

    Raises
    ------
    ScoringError
        A missing folder, a folder without images, two files with one name, an image without a
        reference (all such names listed), or an image whose size differs from its reference's.
    sr_models.images.ImageError
        An unreadable or unsupported image (palette, alpha, 16-bit, ...), naming the file.
    """
    metrics = parse_metrics(metrics)
    images = _images_by_name(Path(folder), "image")
    refs = _images_by_name(Path(reference), "reference") if reference is not None else None
    if refs is None and any(m not in NO_REFERENCE_METRICS for m in metrics):
        raise ScoringError(f"{','.join(m for m in metrics if m not in NO_REFERENCE_METRICS)} need --reference; "
                           f"without references only niqe can be computed")
    if refs is not None:
        missing = [name for name in images if name not in refs]
        if missing:
            raise ScoringError(f"no reference in {reference} for {len(missing)} image(s): "
                               + ", ".join(images[n].name for n in missing[:10]) + (" ..." if len(missing) > 10 else ""))
    names = progress(list(images)) if progress else list(images)
    scores = []
    for name in names:
        sr = read_image(images[name])
        hr = read_image(refs[name]) if refs is not None else None
        if hr is not None and sr.shape != hr.shape:
            raise ScoringError(f"{images[name].name} is {_size(sr)} but its reference {refs[name].name} is {_size(hr)}")
        try:
            values = score_image(sr, hr, metrics, border=border, device=device)
        except ValueError as exc:
            raise ScoringError(f"{images[name].name}: {exc}") from None
        scores.append(_image_score(name, values))
    return scores


def _size(image: torch.Tensor) -> str:
    channels = {1: "gray", 3: "RGB"}[image.shape[0]]
    return f"{image.shape[-1]}x{image.shape[-2]} {channels}"


def _columns(scores: list[ImageScore]) -> list[str]:
    present = set(scores[0].extra) if scores else set()
    return [METRIC_COLUMNS[m] for m in METRICS if METRIC_COLUMNS[m] in present]


def mean_scores(scores: list[ImageScore]) -> ImageScore:
    """Mean of each per-image score (the published convention: PSNR averaged in dB)."""
    if not scores:
        raise ValueError("no scores to average")
    return ImageScore(
        "mean",
        math.fsum(s.psnr_y for s in scores) / len(scores),
        math.fsum(s.ssim_y for s in scores) / len(scores),
        {c: math.fsum(s.extra[c] for s in scores) / len(scores) for c in _columns(scores)},
    )


def write_scores_csv(scores: list[ImageScore], path: str | Path, *, columns: Iterable[str] | None = None) -> Path:
    """CSV, one row per image, full precision, atomically; no mean row.

    The header is ``image,psnr_y,ssim_y`` followed by the extra metrics present, in the order
    lpips, dists, niqe; ``columns`` (e.g. ``('niqe',)``) replaces the score columns (``image`` first).
    """
    path = Path(path)
    columns = list(columns) if columns is not None else list(CSV_HEADER[1:]) + _columns(scores)
    with atomic_write(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image", *columns])
        for s in scores:
            writer.writerow([s.image, *(repr(s.value(c)) for c in columns)])
    return path
