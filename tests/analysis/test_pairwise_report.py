"""The paired-comparison report: its files, their columns and values, escaping, 2afc-real and gaps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis import pairwise
from analysis.pairwise_report import SCALE_COLUMNS, SCALE_PER_IMAGE_COLUMNS, write_pairwise_report
from analysis.pairwise_simulation import PairedPopulation, simulate_judgments

NAMES = {"m0": "bicubic", "m1": "srresnet-mse", "m2": "srgan-vgg54", "m3": "hr"}


def _study(seed: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    judgments, _ = simulate_judgments(10, 4, population=PairedPopulation(quality=(0.0, 0.4, 1.0, 3.0)), seed=seed)
    for col in ("method_a", "method_b", "choice"):
        judgments[col] = judgments[col].map(NAMES)
    stimuli = pd.DataFrame([("Set5", img, m, psnr, 0.8, 0.2) for img in judgments["image"].unique()
                            for m, psnr in (("bicubic", 28.0), ("srresnet-mse", 32.0), ("srgan-vgg54", 29.5),
                                            ("hr", np.nan))],
                           columns=["dataset", "image", "method", "psnr_y", "ssim_y", "lpips"])
    return judgments, stimuli


def test_report_files_hold_the_analysis_functions_values(tmp_path):
    """pairwise_scale.csv equals scale_per_dataset with the same seed, in the issue's columns; the
    per-image file, the matrix and the tests are there. Catches a report that rescales with other
    settings than it states, or drops the interval columns."""
    judgments, stimuli = _study()
    paths = write_pairwise_report(tmp_path, judgments, stimuli, {"name": "pw", "seed": 7, "protocol": "pairwise"},
                                  n_boot=200)
    scale = pd.read_csv(paths["pairwise_scale"])
    assert list(scale.columns[:len(SCALE_COLUMNS)]) == SCALE_COLUMNS
    expected = pairwise.scale_per_dataset(judgments, methods=list(scale["method"]), n_boot=200, seed=7)
    np.testing.assert_allclose(scale["thurstone_ci_low"], expected["thurstone_ci_low"], rtol=1e-12)
    np.testing.assert_allclose(scale["bt"], expected["bt"], rtol=1e-12)
    assert list(scale["method"]) == ["bicubic", "srresnet-mse", "srgan-vgg54", "hr"]  # the paper's order
    per_image = pd.read_csv(paths["pairwise_scale_per_image"])
    assert list(per_image.columns[:len(SCALE_PER_IMAGE_COLUMNS)]) == SCALE_PER_IMAGE_COLUMNS
    assert len(per_image) == 4 * 4
    matrix = pd.read_csv(paths["preference_matrix"])
    row = matrix[(matrix["preferred"] == "hr") & (matrix["over"] == "bicubic")]["share"].iloc[0]
    pair = ["hr", "bicubic"]
    hr_bicubic = judgments[judgments["method_a"].isin(pair) & judgments["method_b"].isin(pair)]
    assert row == pytest.approx((hr_bicubic["choice"] == "hr").mean())
    assert "\\begin{tabular}" in paths["scale_tex"].read_text()
    assert "fool_rate" not in paths


def test_user_text_is_escaped_in_the_page_and_the_csv(tmp_path):
    """A rater label that a spreadsheet would run and a study file with markup: neither reaches the
    page or a cell unescaped."""
    judgments, stimuli = _study()
    judgments.loc[judgments["rater_id"] == "r000", "rater_id"] = "=HYPERLINK(\"x\")"
    paths = write_pairwise_report(tmp_path, judgments, stimuli,
                                  {"name": "<b>pw</b>", "protocol": "pairwise", "config_text": "<script>x</script>"},
                                  n_boot=50)
    page = paths["html"].read_text()
    assert "<script>x" not in page and "&lt;script&gt;x" in page and "<b>pw</b>" not in page
    assert "'=HYPERLINK" in paths["judgments"].read_text() and "'=HYPERLINK" in paths["raters"].read_text()


def test_2afc_real_reports_the_fool_rate(tmp_path):
    judgments, stimuli = _study()
    real = judgments[(judgments["method_a"] == "hr") | (judgments["method_b"] == "hr")]
    paths = write_pairwise_report(tmp_path, real, stimuli, {"name": "fool", "protocol": "2afc-real"}, n_boot=50)
    fool = pd.read_csv(paths["fool_rate"]).set_index("method")
    srgan = real[(real["method_a"] == "srgan-vgg54") | (real["method_b"] == "srgan-vgg54")]
    assert fool.loc["srgan-vgg54", "fool_rate"] == pytest.approx((srgan["choice"] == "srgan-vgg54").mean())
    assert "Fool rate" in paths["html"].read_text()


def test_disconnected_methods_are_reported_not_scaled_together(tmp_path):
    """Two pairs never linked: the page warns and the CSV gives them different groups."""
    judgments, stimuli = _study()
    linked = {frozenset(("bicubic", "srresnet-mse")), frozenset(("srgan-vgg54", "hr"))}
    keep = [frozenset((a, b)) in linked for a, b in zip(judgments["method_a"], judgments["method_b"], strict=True)]
    paths = write_pairwise_report(tmp_path, judgments[keep], stimuli, {"name": "gap"}, n_boot=50)
    scale = pd.read_csv(paths["pairwise_scale"]).set_index("method")
    assert scale.loc["bicubic", "component"] != scale.loc["hr", "component"]
    assert "groups never compared with each other" in paths["html"].read_text()
