"""analysis.report: every file is written, consistent with the other modules, and shown in the HTML page."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pandas as pd
import pytest

from analysis import io as aio
from analysis import report, screening, stats, tables
from tests.analysis.conftest import assert_unchanged

STUDY = {
    "name": "Pilot <SR> study",
    "seed": 1234,
    "config_text": '[study]\nname = "Pilot"\nseed = 1234\nraters = 12\n',
    "operator": "lab-7",
}


@pytest.fixture(scope="module")
def written(small_study, small_stimuli, tmp_path_factory):
    ratings, truth = small_study
    before_r, before_s = ratings.copy(), small_stimuli.copy()
    out = tmp_path_factory.mktemp("report")
    paths = report.write_report(out, ratings, small_stimuli, dict(STUDY), n_boot=200)
    assert_unchanged(before_r, ratings)
    assert_unchanged(before_s, small_stimuli)
    return out, paths, ratings, truth, small_stimuli


def test_all_files_are_written(written):
    out, paths, *_ = written
    for key in ("ratings", "mos", "mos_per_image", "pairwise", "raters", "mos_unflagged", "reliability",
                "mle_quality", "table2", "sureal", "html"):  # fmt: skip
        assert paths[key].is_file() and paths[key].parent == out, key
    names = {p.name for p in paths.values()}
    for stem in ("distribution_Set5", "distribution_BSD100", "mos", "mos_bootstrap",
                 "perception_distortion_psnr_y", "perception_distortion_ssim_y",
                 "perception_distortion_lpips"):  # fmt: skip
        assert {f"{stem}.png", f"{stem}.svg"} <= names
    for key, path in paths.items():
        if key.endswith("_svg"):
            ET.parse(path)  # well-formed SVG
        if key.endswith("_png"):
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob(".*.tmp"))


def test_csv_files_have_the_interface_columns_and_values(written):
    out, paths, ratings, *_ = written
    mos = pd.read_csv(paths["mos"])
    assert list(mos.columns[:7]) == ["dataset", "method", "n", "mos", "std", "ci_low", "ci_high"]
    assert {"boot_low", "boot_high"} <= set(mos.columns[7:])
    ref = stats.mos_table(ratings)
    pd.testing.assert_frame_equal(mos[ref.columns], ref, check_dtype=False)
    boot = stats.bootstrap_mos_ci(ratings, n_boot=200, seed=STUDY["seed"])  # the study seed is the default
    pd.testing.assert_series_equal(mos["boot_low"], boot["boot_low"], check_dtype=False)
    pairwise = pd.read_csv(paths["pairwise"])
    assert list(pairwise.columns[:8]) == ["dataset", "method_a", "method_b", "n", "statistic", "p_value", "p_holm",
                                          "effect_size"]  # fmt: skip
    assert len(pairwise) == 12
    per_image = pd.read_csv(paths["mos_per_image"])
    assert list(per_image.columns) == ["dataset", "image", "method", "n", "mos", "std", "ci_low", "ci_high"]
    csv_ratings = pd.read_csv(paths["ratings"])
    assert list(csv_ratings.columns[:6]) == ["rater", "dataset", "image", "method", "score", "created_at"]
    assert len(aio.read_ratings_csv(paths["ratings"])) == len(ratings)  # importable again
    raters = pd.read_csv(paths["raters"])
    expected = screening.rater_report(ratings)
    assert raters["flagged"].tolist() == expected["flagged"].tolist()
    flagged = set(raters.loc[raters["flagged"], "rater_id"])
    assert flagged  # the planted random rater
    unflagged = pd.read_csv(paths["mos_unflagged"])
    pd.testing.assert_frame_equal(
        unflagged, stats.mos_table(ratings[~ratings["rater_id"].isin(flagged)]), check_dtype=False
    )
    assert (unflagged["n"] < mos["n"]).all()
    tex = paths["table2"].read_text()
    assert tex == tables.table2_latex(stats.mos_table(ratings), stats.metric_means(written[4]),
                                      methods=tables.method_order(ratings["method"].unique()),
                                      datasets=["Set5", "BSD100"])  # fmt: skip


def test_html_is_standalone_and_shows_everything(written):
    out, paths, ratings, truth, stimuli = written
    page = paths["html"].read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page
    assert not re.search(r"""(src|href)\s*=\s*["'](https?:)?//""", page)  # no external resources
    assert "<script" not in page and "<link" not in page
    assert page.count('src="data:image/png;base64,') == sum(k.endswith("_png") for k in paths)
    for key, path in paths.items():
        if key != "html":
            assert f'href="{path.name}"' in page, path.name
    assert "Pilot &lt;SR&gt; study" in page and "<SR>" not in page  # escaped
    assert "raters = 12" in page and "1234" in page and "lab-7" in page  # study file, seed, extra keys
    for digest in stimuli["sha256"]:
        assert digest in page
    for label in ("NN", "Bicubic", "SRGAN", "HR"):
        assert f">{label}<" in page
    spammer = truth.raters.loc[truth.raters["random"], "rater_id"].item()
    assert f"<b>{spammer}</b>" in page  # listed with its reasons
    for heading in ("Mean opinion scores", "Table 2 layout", "Pairwise significance", "Figures",
                    "Raters and reliability", "Reproducibility", "Krippendorff alpha (interval)"):  # fmt: skip
        assert heading in page
    assert "MOS (unflagged)" in page and "▲" in page


def test_report_is_reproducible(written, tmp_path):
    out, paths, ratings, _, stimuli = written
    again = report.write_report(tmp_path, ratings, stimuli, dict(STUDY), n_boot=200)
    for key in ("mos", "pairwise", "raters", "table2", "sureal", "html", "figure_mos_svg"):
        assert again[key].read_bytes() == paths[key].read_bytes(), key
    other_seed = report.write_report(tmp_path / "s", ratings, stimuli, dict(STUDY), n_boot=200, seed=7)
    assert other_seed["mos"].read_bytes() != paths["mos"].read_bytes()
