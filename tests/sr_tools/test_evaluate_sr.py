"""``manage.py evaluate_sr``: its table, CSV and saved images, and its errors."""

from __future__ import annotations

import csv
import io
import shutil

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from PIL import Image

from sr_models.images import read_image
from sr_models.metrics import psnr_y


def run(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command("evaluate_sr", *args, stdout=out, stderr=err)
    return out.getvalue()


def test_bicubic_on_set5_table_csv_and_images(tmp_path, datasets_root):
    csv_path = tmp_path / "scores.csv"
    save_dir = tmp_path / "sr"
    out = run("--dataset", "Set5", "--method", "bicubic", "--csv", str(csv_path), "--save-dir", str(save_dir))
    assert "PSNR-Y 28.42 dB" in out
    lines = [line for line in out.splitlines() if line.startswith("img_")]
    assert len(lines) == 5
    rows = list(csv.reader(csv_path.open()))
    assert rows[0] == ["image", "psnr_y", "ssim_y"]
    assert [r[0] for r in rows[1:]] == ["img_001", "img_002", "img_003", "img_004", "img_005"]
    assert np.mean([float(r[1]) for r in rows[1:]]) == pytest.approx(28.4177, abs=1e-4)
    # Saved SR images are named like the HR files and score the same when re-read.
    saved = sorted(p.name for p in save_dir.iterdir())
    assert saved == [f"img_00{i}_SRF_4_HR.png" for i in range(1, 6)]
    hr = read_image(datasets_root / "Set5" / "x4" / "img_003_SRF_4_HR.png")
    sr = read_image(save_dir / "img_003_SRF_4_HR.png")
    assert psnr_y(sr, hr).item() == pytest.approx(float(rows[3][1]), abs=1e-12)


def test_a_folder_dataset_with_a_corrupt_image_names_the_file(tmp_path, datasets_root):
    for f in (datasets_root / "Set5" / "x4").glob("img_00[12]_*"):
        shutil.copy(f, tmp_path / f.name)
    (tmp_path / "img_002_SRF_4_LR.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(CommandError, match="img_002_SRF_4_LR.png"):
        run("--dataset", str(tmp_path), "--method", "bicubic")


def test_unknown_method_and_dataset():
    with pytest.raises(CommandError, match="unknown method 'lanczos'"):
        run("--dataset", "Set5", "--method", "lanczos")
    with pytest.raises(CommandError, match="unknown dataset 'Set6'"):
        run("--dataset", "Set6", "--method", "bicubic")


def test_odd_sized_folder_images(tmp_path):
    # A user's own pair with odd sizes works: HR 4x LR of any size.
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (4 * 13, 4 * 17, 3), dtype=np.uint8)).save(tmp_path / "x_HR.png")
    Image.fromarray(rng.integers(0, 256, (13, 17, 3), dtype=np.uint8)).save(tmp_path / "x_LR.png")
    out = run("--dataset", str(tmp_path), "--method", "nearest", "--csv", str(tmp_path / "s.csv"))
    assert "x " in out and "nearest on" in out


def test_csv_is_readable_by_other_users(tmp_path):
    run("--dataset", "Set5", "--method", "nearest", "--csv", str(tmp_path / "s.csv"))
    assert (tmp_path / "s.csv").stat().st_mode & 0o777 == 0o644


def _small_folder_dataset(folder, datasets_root):
    """Two 200x200 HR crops of Set5 with their MATLAB-bicubic LR: fast, and big enough for NIQE."""
    from sr_models.datasets import find_dataset
    from sr_models.images import write_png
    from sr_models.resize import make_lr

    for pair in find_dataset("Set5", datasets_root).pairs[:2]:
        hr, lr = make_lr(pair.load()[0][:, 40:240, 40:240].contiguous())
        write_png(hr, folder / f"{pair.name}_HR.png")
        write_png(lr, folder / f"{pair.name}_LR.png")
    return folder


def test_metrics_add_columns_after_psnr_and_ssim(tmp_path, datasets_root):
    from sr_models.dists import dists
    from sr_models.niqe import niqe
    from sr_models.resize import imresize

    data = _small_folder_dataset(tmp_path / "data", datasets_root)
    run("--dataset", str(data), "--method", "bicubic", "--csv", str(tmp_path / "plain.csv"))
    out = run("--dataset", str(data), "--method", "bicubic", "--metrics", "niqe,psnr,ssim,lpips,dists",
              "--csv", str(tmp_path / "all.csv"))
    plain = list(csv.reader((tmp_path / "plain.csv").open()))
    rows = list(csv.reader((tmp_path / "all.csv").open()))
    assert plain[0] == ["image", "psnr_y", "ssim_y"]
    assert rows[0] == ["image", "psnr_y", "ssim_y", "lpips", "dists", "niqe"]
    assert [r[:3] for r in rows] == plain  # the first columns are unchanged
    hr = read_image(data / "img_002_HR.png")
    sr = imresize(read_image(data / "img_002_LR.png"), 4, method="bicubic")
    assert float(rows[2][4]) == float(dists(sr, hr, 4)) and float(rows[2][5]) == niqe(sr, 4)
    assert "LPIPS" in out and "DISTS" in out and "NIQE" in out.splitlines()[-2]
    with pytest.raises(CommandError, match="unknown metric"):
        run("--dataset", str(data), "--method", "bicubic", "--metrics", "psnr,brisque")


def score(*args):
    out = io.StringIO()
    call_command("score_images", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_score_images_scores_a_folder_against_references(tmp_path, datasets_root):
    from sr_models.images import write_png
    from sr_models.resize import imresize

    data = _small_folder_dataset(tmp_path / "data", datasets_root)
    results = tmp_path / "theirs"
    for name in ("img_001", "img_002"):
        write_png(imresize(read_image(data / f"{name}_LR.png"), 4, method="bicubic"), results / f"{name}_x4_SR.png")
    refs = tmp_path / "refs"
    refs.mkdir()
    for name in ("img_001", "img_002"):
        Image.open(data / f"{name}_HR.png").save(refs / f"{name}.bmp")
    # img_001_x4_SR and img_001.bmp do not share a name: the error lists what has no reference.
    with pytest.raises(CommandError, match=r"no reference .* 2 image\(s\): img_001_x4_SR.png, img_002_x4_SR.png"):
        score(str(results), "--reference", str(refs))
    for name in ("img_001", "img_002"):
        (results / f"{name}_x4_SR.png").rename(results / f"{name}.png")
    out = score(str(results), "--reference", str(refs), "--metrics", "psnr,niqe", "--csv", str(tmp_path / "s.csv"))
    rows = list(csv.reader((tmp_path / "s.csv").open()))
    assert rows[0] == ["image", "psnr_y", "niqe"] and [r[0] for r in rows[1:]] == ["img_001", "img_002"]
    evaluated = tmp_path / "e.csv"
    run("--dataset", str(data), "--method", "bicubic", "--metrics", "niqe", "--csv", str(evaluated))
    expected = list(csv.reader(evaluated.open()))
    assert [[r[0], r[1], r[2]] for r in rows[1:]] == [[r[0], r[1], r[3]] for r in expected[1:]]
    assert "2 images" in out
    no_ref = score(str(results), "--csv", str(tmp_path / "n.csv"))
    assert list(csv.reader((tmp_path / "n.csv").open()))[0] == ["image", "niqe"] and "NIQE" in no_ref
    with pytest.raises(CommandError, match="psnr need --reference"):
        score(str(results), "--metrics", "psnr")
    with pytest.raises(CommandError, match="does not exist"):
        score(str(tmp_path / "missing"), "--reference", str(refs))
