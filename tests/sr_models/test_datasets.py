"""Finding the shared test sets by name or folder, and refusing broken pairs by name."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from sr_models.datasets import DatasetError, find_dataset, image_name, training_image_paths
from sr_models.images import ImageError


@pytest.mark.parametrize("name, count", [("Set5", 5), ("Set14", 14), ("BSD100", 100), ("set14", 14)])
def test_benchmark_sets_by_name(datasets_root, name, count):
    ds = find_dataset(name, datasets_root)
    assert len(ds) == count
    assert ds.pairs[0].name == "img_001"
    assert ds.name.lower() == name.lower()


def test_every_shared_pair_loads_with_hr_four_times_lr(datasets_root):
    gray = []
    for name in ("Set5", "Set14"):
        for pair in find_dataset(name, datasets_root):
            hr, lr = pair.load()
            assert hr.shape[1:] == (4 * lr.shape[1], 4 * lr.shape[2])
            if hr.shape[0] == 1:
                gray.append((name, pair.name))
    assert gray == [("Set14", "img_003")]  # the one grayscale test image


def test_image_names():
    assert image_name("img_001_SRF_4_HR.png") == "img_001"
    assert image_name("baby_HR.png") == "baby"
    assert image_name("baby_LR.png") == "baby"
    assert image_name("plain.png") == "plain"


def test_a_folder_of_pairs(tmp_path, datasets_root):
    src = datasets_root / "Set5" / "x4"
    for f in sorted(src.iterdir())[:4]:
        shutil.copy(f, tmp_path / f.name)
    ds = find_dataset(tmp_path, None)
    assert [p.name for p in ds] == ["img_001", "img_002"]
    assert ds.name == tmp_path.name


def test_unknown_dataset_lists_what_exists(datasets_root):
    with pytest.raises(DatasetError, match="unknown dataset 'Urban100'.*BSD100, Set14, Set5"):
        find_dataset("Urban100", datasets_root)


def test_missing_lr_is_named(tmp_path, datasets_root):
    shutil.copy(datasets_root / "Set5" / "x4" / "img_001_SRF_4_HR.png", tmp_path)
    with pytest.raises(DatasetError, match="no LR file for img_001_SRF_4_HR.png"):
        find_dataset(tmp_path, None)


def test_wrongly_sized_hr_is_named(tmp_path):
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / "a_HR.png")
    Image.fromarray(np.zeros((11, 10, 3), np.uint8)).save(tmp_path / "a_LR.png")
    pair = find_dataset(tmp_path, None).pairs[0]
    with pytest.raises(ImageError, match=r"a_HR.png: HR is 40x40 .* LR a_LR.png is 10x11"):
        pair.load()


def test_channel_mismatch_is_named(tmp_path):
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / "a_HR.png")
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(tmp_path / "a_LR.png")
    with pytest.raises(ImageError, match="a_LR.png: LR has 1 channel"):
        find_dataset(tmp_path, None).pairs[0].load()


def test_training_images(datasets_root):
    paths = training_image_paths(datasets_root)
    assert len(paths) == 291  # T91 + BSD200
    with pytest.raises(DatasetError, match="training set 'ImageNet' not found"):
        training_image_paths(datasets_root, ("ImageNet",))
