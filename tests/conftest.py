"""Shared fixtures: the real benchmark images from ../shared/datasets and small crops of them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
DATASETS_ROOT = Path(os.environ.get("SR_DATASETS_ROOT", REPO.parent / "shared" / "datasets"))


@pytest.fixture(scope="session")
def datasets_root() -> Path:
    if not (DATASETS_ROOT / "Set5").is_dir():
        pytest.fail(f"the shared datasets are missing at {DATASETS_ROOT} (set SR_DATASETS_ROOT)")
    return DATASETS_ROOT


@pytest.fixture(scope="session")
def set5(datasets_root):
    from sr_models.datasets import find_dataset

    return find_dataset("Set5", datasets_root)


@pytest.fixture(scope="session")
def baby_pair(set5):
    """Set5 img_001 (baby): (HR, LR) uint8 tensors, (3, 512, 512) and (3, 128, 128)."""
    return set5.pairs[0].load()


@pytest.fixture(scope="session")
def hr_crop(baby_pair) -> torch.Tensor:
    """A 3x64x48 uint8 crop of a real HR image: small enough for loop-based references."""
    hr, _ = baby_pair
    return hr[:, 200:264, 180:228].contiguous()
