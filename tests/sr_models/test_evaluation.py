"""sr_models.evaluation: metric selection, the CSV layout, and scoring a folder against references."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch
from PIL import Image

from sr_models import evaluation as E
from sr_models.dists import dists
from sr_models.images import write_png
from sr_models.lpips import lpips
from sr_models.metrics import psnr_ssim_y
from sr_models.niqe import niqe
from sr_models.resize import imresize


@pytest.fixture(scope="module")
def pair(baby_pair):
    """A 200x200 HR crop and its 4x bicubic reconstruction (enough for NIQE's 96x96 blocks)."""
    hr, _ = baby_pair
    hr = hr[:, 100:300, 150:350].contiguous()
    return imresize(imresize(hr, 0.25), 4), hr


def test_parse_metrics_orders_and_refuses():
    assert E.parse_metrics("niqe, PSNR,dists") == ("psnr", "dists", "niqe")
    with pytest.raises(ValueError, match=r"unknown metric\(s\) 'fid'.*psnr,ssim,lpips,dists,niqe"):
        E.parse_metrics("psnr,fid")
    with pytest.raises(ValueError, match="none given"):
        E.parse_metrics(" , ")


def test_score_image_is_each_metric_with_the_same_border(pair):
    """Catches a metric computed without the border or on another image."""
    sr, hr = pair
    values = E.score_image(sr, hr, E.METRICS, border=4)
    p, s = psnr_ssim_y(sr, hr, 4)
    assert list(values) == ["psnr_y", "ssim_y", "lpips", "dists", "niqe"]
    assert values["psnr_y"] == float(p) and values["ssim_y"] == float(s)
    assert values["lpips"] == float(lpips(sr, hr, 4))
    assert values["dists"] == float(dists(sr, hr, 4))
    assert values["niqe"] == niqe(sr, 4) != niqe(sr, 0)
    assert E.score_image(sr, None, ["niqe"]) == {"niqe": niqe(sr, 4)}
    with pytest.raises(ValueError, match="dists compare with a reference"):
        E.score_image(sr, None, ["dists", "niqe"])


def _folder(tmp_path, pair):
    sr, hr = pair
    out, ref = tmp_path / "out", tmp_path / "ref"
    write_png(sr, out / "img_001_SRF_4_SRGAN.png")
    write_png(hr, ref / "img_001_SRF_4_HR.png")
    flipped_sr, flipped_hr = sr.flip(-1).contiguous(), hr.flip(-1).contiguous()
    out.joinpath("b.bmp").parent.mkdir(exist_ok=True)
    Image.fromarray(flipped_sr.permute(1, 2, 0).numpy()).save(out / "b.bmp")
    Image.fromarray(flipped_hr.permute(1, 2, 0).numpy()).save(ref / "b.png")
    return out, ref


def test_score_folder_matches_by_image_name_across_file_types(tmp_path, pair):
    out, ref = _folder(tmp_path, pair)
    (ref / "unused_HR.png").write_bytes((ref / "b.png").read_bytes())  # extra references are ignored
    scores = E.score_folder(out, ref, ["psnr", "niqe"])
    assert [s.image for s in scores] == ["b", "img_001"]
    sr, hr = pair
    assert scores[1].psnr_y == float(psnr_ssim_y(sr, hr, 4)[0]) and math.isnan(scores[1].ssim_y)
    assert scores[0].extra["niqe"] == niqe(sr.flip(-1), 4)
    path = E.write_scores_csv(scores, tmp_path / "s.csv", columns=["psnr_y", "niqe"])
    rows = list(csv.reader(path.open()))
    assert rows[0] == ["image", "psnr_y", "niqe"] and float(rows[2][1]) == scores[1].psnr_y


def test_score_folder_without_references_is_niqe_only(tmp_path, pair):
    out, _ = _folder(tmp_path, pair)
    assert [s.extra for s in E.score_folder(out, None, ["niqe"])][1] == {"niqe": niqe(pair[0], 4)}
    with pytest.raises(E.ScoringError, match="psnr,lpips need --reference"):
        E.score_folder(out, None, ["psnr", "lpips", "niqe"])


def test_score_folder_errors_name_the_files(tmp_path, pair):
    out, ref = _folder(tmp_path, pair)
    with pytest.raises(E.ScoringError, match="image folder .*nowhere does not exist"):
        E.score_folder(tmp_path / "nowhere", ref, ["psnr"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(E.ScoringError, match="no images"):
        E.score_folder(tmp_path / "empty", ref, ["psnr"])
    (ref / "b.png").unlink()
    with pytest.raises(E.ScoringError, match=r"no reference in .* for 1 image\(s\): b.bmp"):
        E.score_folder(out, ref, ["psnr"])
    write_png(pair[1][:, :-8], ref / "b.png")
    with pytest.raises(E.ScoringError, match=r"b.bmp is 200x200 RGB but its reference b.png is 200x192 RGB"):
        E.score_folder(out, ref, ["psnr"])
    (ref / "b.png").unlink()
    Image.fromarray(pair[1].permute(1, 2, 0).numpy()).convert("P").save(ref / "b.png")
    with pytest.raises(Exception, match="b.png: is a palette"):
        E.score_folder(out, ref, ["psnr"])
    (ref / "b.jpg").write_bytes(b"")
    with pytest.raises(E.ScoringError, match="b.jpg and b.png .* same image name 'b'"):
        E.score_folder(out, ref, ["psnr"])


def test_a_too_small_image_is_named(tmp_path):
    rng = np.random.default_rng(0)
    write_png(torch.from_numpy(rng.integers(0, 256, (3, 60, 60), dtype=np.uint8)), tmp_path / "tiny.png")
    with pytest.raises(E.ScoringError, match=r"tiny.png: NIQE needs at least one 96x96 block"):
        E.score_folder(tmp_path, None, ["niqe"])


def test_csv_keeps_psnr_ssim_first_then_extras(tmp_path, pair):
    scores = [E.ImageScore("a", 30.0, 0.9, {"niqe": 5.0, "lpips": 0.2})]
    rows = list(csv.reader(E.write_scores_csv(scores, tmp_path / "a.csv").open()))
    assert rows == [["image", "psnr_y", "ssim_y", "lpips", "niqe"], ["a", "30.0", "0.9", "0.2", "5.0"]]
    assert E.mean_scores(scores + [E.ImageScore("b", 20.0, 0.7, {"niqe": 7.0, "lpips": 0.4})]).extra == {
        "lpips": pytest.approx(0.3), "niqe": 6.0}


def test_a_benchmark_folder_serves_as_references_by_its_hr_files(tmp_path, pair, datasets_root):
    """Catches the LR files of a SelfExSR folder taken as references (or refused as duplicate names)."""
    sr, hr = pair
    ref = tmp_path / "ref"
    write_png(hr, ref / "img_001_SRF_4_HR.png")
    write_png(hr[:, ::4, ::4].contiguous(), ref / "img_001_SRF_4_LR.png")
    write_png(sr, tmp_path / "out" / "img_001.png")
    [score] = E.score_folder(tmp_path / "out", ref, ["psnr"])
    assert score.psnr_y == float(psnr_ssim_y(sr, hr, 4)[0])
