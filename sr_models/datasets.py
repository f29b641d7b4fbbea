"""The benchmark test sets (Set5, Set14, BSD100) and training images, found by name or folder.

A test set is a folder of ``<name>_HR.png`` / ``<name>_LR.png`` pairs, as SelfExSR distributes them
(``img_001_SRF_4_HR.png``). Pairs are checked when loaded: HR must be exactly ``scale`` times LR and
both must have the same number of channels, so a wrongly sized image is reported by name instead of
producing a silently shifted PSNR.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from .images import ImageError, read_image

__all__ = [
    "BENCHMARK_SETS",
    "TRAINING_SETS",
    "DatasetError",
    "ImagePair",
    "Dataset",
    "find_dataset",
    "training_image_paths",
    "image_name",
]

BENCHMARK_SETS = ("Set5", "Set14", "BSD100")
TRAINING_SETS = ("T91", "BSD200")
IMAGE_SUFFIXES = (".png", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg")

_PAIR_RE = re.compile(r"^(?P<stem>.+)_(?P<kind>HR|LR)$", re.IGNORECASE)


class DatasetError(ValueError):
    """A dataset that cannot be found or is not a valid set of HR/LR pairs."""


def image_name(path: str | os.PathLike) -> str:
    """The image's name in reports: the file stem up to ``_SRF`` or ``_HR``/``_LR``.

    ``img_001_SRF_4_HR.png`` -> ``img_001``; ``baby_HR.png`` -> ``baby``; ``img_001.png`` -> ``img_001``.
    """
    stem = Path(path).stem
    if "_SRF" in stem:
        return stem.split("_SRF", 1)[0]
    match = _PAIR_RE.match(stem)
    return match.group("stem") if match else stem


@dataclass(frozen=True)
class ImagePair:
    """One test image: its HR file, its LR file and its name in reports."""

    name: str
    hr_path: Path
    lr_path: Path
    scale: int

    def load(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Read and check both images.

        Returns
        -------
        (hr, lr) : uint8 Tensors, shapes (C, s*H, s*W) and (C, H, W)

        Raises
        ------
        ImageError
            If either file is unreadable or unsupported, or their sizes or channels disagree.
        """
        hr = read_image(self.hr_path)
        lr = read_image(self.lr_path)
        expected = (lr.shape[1] * self.scale, lr.shape[2] * self.scale)
        if tuple(hr.shape[1:]) != expected:
            raise ImageError(
                self.hr_path,
                f"HR is {hr.shape[2]}x{hr.shape[1]} (WxH) but its LR {self.lr_path.name} is "
                f"{lr.shape[2]}x{lr.shape[1]}; at scale {self.scale} HR must be exactly "
                f"{expected[1]}x{expected[0]} (crop HR to a multiple of {self.scale} before downscaling)",
            )
        if hr.shape[0] != lr.shape[0]:
            raise ImageError(
                self.lr_path,
                f"LR has {lr.shape[0]} channel(s) but HR {self.hr_path.name} has {hr.shape[0]}",
            )
        return hr, lr


@dataclass(frozen=True)
class Dataset:
    """A named, ordered list of HR/LR pairs."""

    name: str
    folder: Path
    scale: int
    pairs: tuple[ImagePair, ...]

    def __len__(self) -> int:
        return len(self.pairs)

    def __iter__(self):
        return iter(self.pairs)

    def pair(self, name: str) -> ImagePair:
        for pair in self.pairs:
            if pair.name == name:
                return pair
        raise DatasetError(f"dataset {self.name} has no image named {name!r}")


def _pairs_in(folder: Path, scale: int) -> tuple[ImagePair, ...]:
    hr_files: dict[str, Path] = {}
    lr_files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        match = _PAIR_RE.match(path.stem)
        if not match:
            continue
        target = hr_files if match.group("kind").upper() == "HR" else lr_files
        name = image_name(path)
        if name in target:
            raise DatasetError(f"{folder}: two files for the same image {name!r}: {target[name].name} and {path.name}")
        target[name] = path
    missing_lr = sorted(set(hr_files) - set(lr_files))
    missing_hr = sorted(set(lr_files) - set(hr_files))
    if missing_lr:
        raise DatasetError(f"{folder}: no LR file for {', '.join(hr_files[n].name for n in missing_lr)}")
    if missing_hr:
        raise DatasetError(f"{folder}: no HR file for {', '.join(lr_files[n].name for n in missing_hr)}")
    if not hr_files:
        raise DatasetError(f"{folder}: no *_HR.png / *_LR.png image pairs found")
    return tuple(ImagePair(n, hr_files[n], lr_files[n], scale) for n in sorted(hr_files))


def find_dataset(name_or_dir: str | os.PathLike, datasets_root: str | os.PathLike | None, scale: int = 4) -> Dataset:
    """Find a test set by name under ``datasets_root`` (``Set5/x4``), or use a folder of pairs.

    Parameters
    ----------
    name_or_dir : str or path
        ``Set5``, ``Set14``, ``BSD100`` (case-insensitive), any other folder name under
        ``datasets_root``, or a path to a folder of ``*_HR``/``*_LR`` pairs.
    datasets_root : path or None
        The folder holding the named sets (the project's ``../shared/datasets`` by default, chosen by
        the caller: this library reads no settings).
    """
    candidate = Path(name_or_dir)
    if candidate.is_dir():
        folder = candidate
        name = candidate.name if candidate.name.lower() != f"x{scale}" else candidate.parent.name
    else:
        if datasets_root is None:
            raise DatasetError(f"{name_or_dir!r} is not a folder and no datasets root is configured")
        root = Path(datasets_root)
        if not root.is_dir():
            raise DatasetError(f"datasets root {root} does not exist (set SR_DATASETS_ROOT to the folder holding Set5, Set14, BSD100)")
        names = {p.name.lower(): p for p in root.iterdir() if p.is_dir()}
        base = names.get(str(name_or_dir).lower())
        if base is None:
            available = sorted(p.name for p in names.values() if p.name != "train")
            raise DatasetError(f"unknown dataset {str(name_or_dir)!r}: not a folder, and {root} has only {', '.join(available) or 'nothing'}")
        name = base.name
        folder = base / f"x{scale}" if (base / f"x{scale}").is_dir() else base
    return Dataset(name=name, folder=folder.resolve(), scale=scale, pairs=_pairs_in(folder, scale))


def training_image_paths(datasets_root: str | os.PathLike, subsets: tuple[str, ...] = TRAINING_SETS) -> list[Path]:
    """All training image files of ``subsets`` under ``<datasets_root>/train``, sorted."""
    root = Path(datasets_root) / "train"
    paths: list[Path] = []
    for subset in subsets:
        folder = root / subset
        if not folder.is_dir():
            raise DatasetError(f"training set {subset!r} not found at {folder}")
        paths.extend(sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))
    if not paths:
        raise DatasetError(f"no training images in {root} ({', '.join(subsets)})")
    return paths
