"""analysis.report: every file is written, consistent with the other modules, and shown in the HTML page."""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest

from analysis import io as aio
from analysis import report, screening, stats, tables
from tests.analysis.conftest import assert_unchanged

STUDY = {
    "name": "Pilot <SR> study",
    "seed": 1234,
    "config_text": '[study]\nname = "Pilot"\nseed = 1234\nraters = 12\n',
    "operator": "lab-7 ${mos} $$",  # template syntax in user text must reach the page as text
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
    assert "lab-7 ${mos} $$" in page  # not substituted by the page template (string.Template)
    assert "${" not in page.replace("lab-7 ${mos} $$", "")  # every placeholder filled
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


def test_html_states_the_flag_rules_that_were_applied(written):
    # The page reads its rule sentences from the FlagRules that flagged the raters; it used to state
    # its own gold rule ("fewer than 80% of gold items within one point"), which contradicted the
    # one applied (one miss always allowed).
    _, paths, *_ = written
    page = paths["html"].read_text(encoding="utf-8")
    for sentence in screening.DEFAULT_RULES.describe():
        assert html.escape(sentence) in page, sentence
    assert "fewer than 80%" not in page


def test_report_is_reproducible(written, tmp_path):
    out, paths, ratings, _, stimuli = written
    again = report.write_report(tmp_path, ratings, stimuli, dict(STUDY), n_boot=200)
    for key in ("mos", "pairwise", "raters", "table2", "sureal", "html", "figure_mos_svg"):
        assert again[key].read_bytes() == paths[key].read_bytes(), key
    other_seed = report.write_report(tmp_path / "s", ratings, stimuli, dict(STUDY), n_boot=200, seed=7)
    assert other_seed["mos"].read_bytes() != paths["mos"].read_bytes()


def _shuffled_categories(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its label columns as categoricals in reverse order, with a category no row uses."""
    out = frame.copy()
    for column in ("rater_id", "dataset", "image", "method", "kind"):
        if column in out.columns:
            values = sorted(out[column].unique(), reverse=True)
            out[column] = pd.Categorical(out[column], categories=["!unused", *values])
    return out


def test_report_is_the_same_from_categorical_labels_in_any_order(written, tmp_path):
    """The build works on categorical labels (``_frames.categorical_keys``); a caller's own category
    order or unused categories must not reorder a table or add a group. Catches keeping the given
    order (groupby sorts by it), grouping with unobserved categories, and any step that breaks on a
    categorical column."""
    out, paths, ratings, _, stimuli = written
    again = report.write_report(tmp_path, _shuffled_categories(ratings), _shuffled_categories(stimuli), dict(STUDY),
                                n_boot=200)  # fmt: skip
    assert again.keys() == paths.keys()
    for key, path in paths.items():
        assert again[key].read_bytes() == path.read_bytes(), key


@pytest.fixture(scope="module")
def sparse_report(stimuli_factory, tmp_path_factory):
    """A balanced study where each rater sees 60% of the stimuli, two raters stopping after 1 and 4
    ratings, reported at 90% confidence."""
    from analysis import planning

    true = {"Set5": {"nearest": 1.6, "bicubic": 2.2, "srgan-vgg54": 3.4, "hr": 4.2},
            "BSD100": {"nearest": 1.4, "bicubic": 2.0, "srgan-vgg54": 3.3, "hr": 4.4}}  # fmt: skip
    ratings = planning.simulate_study(true, n_raters=14, n_images=5, seed=60, rating_fraction=0.6, bias_sd=0.4,
                                      inconsistency=(0.4, 0.9), image_sd=0.3)  # fmt: skip
    order = ratings.groupby("rater_id").cumcount()
    stopped = ((ratings["rater_id"] == "r013") & (order >= 4)) | ((ratings["rater_id"] == "r014") & (order >= 1))
    ratings = ratings[~stopped]
    out = tmp_path_factory.mktemp("sparse")
    paths = report.write_report(out, ratings, stimuli_factory(ratings), {"name": "sparse", "seed": 3}, n_boot=200,
                                confidence=0.9)  # fmt: skip
    return ratings, paths


def test_sparse_report_lists_raters_left_out_of_the_rater_model(sparse_report):
    ratings, paths = sparse_report
    raters = pd.read_csv(paths["raters"], keep_default_na=False).set_index("rater_id")
    left = raters.index[raters["mle_modelled"].astype(str) == "False"].tolist()
    assert left == ["r013", "r014"]
    for rater in left:
        assert "fewer than 10 test ratings" in raters.loc[rater, "mle_note"]
    page = paths["html"].read_text(encoding="utf-8")
    section = page.split("P.910 rater model", 1)[1].split("Study-level reliability", 1)[0]
    assert "<b>r013</b> (4 test ratings)" in section and "<b>r014</b> (1 test ratings)" in section
    reliability = pd.read_csv(paths["reliability"]).set_index("measure")["value"]
    assert float(reliability["raters left out of the P.910 rater model"]) == 2


def test_sparse_report_has_no_interval_narrower_than_the_data_allow(sparse_report):
    # A score carries at least its rounding spread 1/sqrt(12), so psi from n ratings cannot be known
    # better than 1/sqrt(12 n): the old rater model reported 0.001 on such designs.
    ratings, paths = sparse_report
    quality = pd.read_csv(paths["mle_quality"])
    page = paths["html"].read_text(encoding="utf-8")
    if quality["psi_se"].isna().all():
        assert "Warning:" in page and "lower bound" in page
    else:
        assert (quality["psi_se"] >= screening.ROUNDING_SD / quality["n"] ** 0.5 - 1e-12).all()
        half = (quality["psi_ci_high"] - quality["psi_ci_low"]) / 2
        assert (half > 1.64 * quality["psi_se"]).all()  # Student, not normal, at 90%
    mos = pd.read_csv(paths["mos"])
    assert (mos["boot_high"] - mos["boot_low"] > 0).all() and (mos["ci_high"] > mos["ci_low"]).all()
    pairwise = pd.read_csv(paths["pairwise"])
    assert (pairwise["twoway_diff_high"] - pairwise["twoway_diff_low"] > 2 * 1.64 * pairwise["twoway_diff_se"]).all()
    assert (pairwise["twoway_df"] == pairwise[["twoway_n_raters", "twoway_n_images"]].min(axis=1) - 1).all()


def test_captions_state_the_configured_confidence(sparse_report):
    _, paths = sparse_report
    page = paths["html"].read_text(encoding="utf-8")
    assert "95%" not in page and "95 %" not in page
    assert "90% t" in page and "90% bootstrap" in page and "90% two-way bootstrap intervals" in page
    assert "test-retest r, 90% CI low" in pd.read_csv(paths["reliability"])["measure"].tolist()
    for name in ("figure_mos_svg", "figure_mos_bootstrap_svg"):
        svg = paths[name].read_text()
        assert "90%" in svg and "95%" not in svg


def test_html_says_what_each_test_generalises_to(written):
    _, paths, ratings, *_ = written
    page = paths["html"].read_text(encoding="utf-8")
    assert "Generalising to other raters and other images" in page
    assert "The paper's test, for these raters on these images only" in page
    pairwise = pd.read_csv(paths["pairwise"])
    diff = stats.mos_differences(ratings, methods=tables.method_order(ratings["method"].unique()), n_boot=200,
                                 seed=STUDY["seed"])  # fmt: skip
    np.testing.assert_allclose(pairwise["twoway_p_holm"], diff["p_holm"])
    np.testing.assert_allclose(pairwise["twoway_diff_low"], diff["diff_low"])
    np.testing.assert_allclose(pairwise["twoway_boot_se"], diff["boot_se"])


def test_dists_and_niqe_are_axes_with_their_rank_correlations(small_study, small_stimuli, tmp_path):
    """Stimuli that carry DISTS and NIQE get their perception-distortion planes and correlation rows."""
    ratings, _ = small_study
    stimuli = small_stimuli.copy()
    rng = np.random.default_rng(5)
    hr = stimuli["method"] == "hr"
    stimuli["dists"] = np.where(hr, np.nan, 0.4 - 0.01 * stimuli["psnr_y"].fillna(0.0) + rng.normal(0, 0.01, len(stimuli)))
    stimuli["niqe"] = 3.0 + rng.normal(0, 0.5, len(stimuli))  # HR has a NIQE too
    paths = report.write_report(tmp_path, ratings, stimuli, dict(STUDY), n_boot=50)
    names = {p.name for p in paths.values()}
    assert {"perception_distortion_dists.png", "perception_distortion_niqe.png"} <= names
    html = paths["html"].read_text()
    expected = stats.metric_correlations(ratings, stimuli, metrics=["dists", "niqe"], n_boot=50, seed=STUDY["seed"])
    assert set(expected["metric"]) == {"dists", "niqe"}
    assert "which metric agrees with your raters" in html.lower()
    assert '<td class="l">dists</td>' in html and '<td class="l">niqe</td>' in html
    for value in expected["spearman"]:
        assert f'<td class="">{report._fmt(value, 3)}</td>' in html


def test_a_bound_hit_in_the_rater_model_is_a_visible_warning(small_study):
    ratings, _ = small_study
    fit = screening.mle_scores(ratings, min_inconsistency=5.0)  # every rater at the bound
    raters = screening.rater_report(ratings, mle=fit)
    assert raters["mle_at_bound"].all() and raters["mle_note"].str.contains("lower bound 5.000").all()
    section = report._rater_model_html(fit, raters)
    assert '<p class="warning"><b>Warning:</b> inconsistency of r001' in section and "no standard error" in section
    assert "Warning" not in report._rater_model_html(screening.mle_scores(ratings), raters)


def test_html_table_formats_each_column_by_its_rule():
    # The table is written a column at a time with text cells formatted once per distinct text:
    # catches a column's format applied to its neighbour, a cached text reused for a number that
    # equals it (1 and "1"), the class of the left-aligned columns lost, and rows out of order.
    frame = pd.DataFrame({
        "name": ["<b>a&b</b>", "x", "<b>a&b</b>", "1"],
        "value": [1.23456, np.nan, 2.0, 1.0],
        "n": [1, 2, 3, 4],
        "ok": [True, False, True, False],
        "p": [0.5, 1e-5, 0.0, np.nan],
    })
    out = report._html_table(frame, formats={"value": 1, "p": report._fmt_p}, left=["name"],
                             row_class=lambda k: "odd" if k % 2 else "")
    rows = re.findall(r'<tr class="([^"]*)">(.*?)</tr>', out.split("<tbody>")[1])
    assert [cls for cls, _ in rows] == ["", "odd", "", "odd"]
    cells = [re.findall(r'<td class="([^"]*)">(.*?)</td>', body) for _, body in rows]
    assert cells[0] == [("l", "&lt;b&gt;a&amp;b&lt;/b&gt;"), ("", "1.2"), ("", "1"), ("", "yes"), ("", "0.500")]
    assert cells[1] == [("l", "x"), ("", ""), ("", "2"), ("", "no"), ("", "1.00e-05")]
    assert cells[2] == [("l", "&lt;b&gt;a&amp;b&lt;/b&gt;"), ("", "2.0"), ("", "3"), ("", "yes"), ("", "&lt; 1e-300")]
    assert cells[3] == [("l", "1"), ("", "1.0"), ("", "4"), ("", "no"), ("", "")]
    assert '<th class="l">name</th>' in out and '<th class="">p</th>' in out


def test_csv_escaping_of_mixed_text_columns(tmp_path):
    # Only text cells that start like a formula are prefixed, whatever else the column holds; the
    # fast path (testing the column's text at once) must not skip a formula in an object column
    # with numbers in it, nor prefix a negative number written as text, nor touch numeric columns.
    frame = pd.DataFrame({
        "label": ["=HYPERLINK(1)", "plain", "-2.5", "@SUM(A1)", None],
        "mixed": pd.Series([1, "+cmd", 2.5, "ok", "-x"], dtype=object),
        "score": [-1, 2, 3, 4, 5],
        # Distinct values are tested once: every cell holding a formula value is escaped.
        "again": ["=A1", "x", "=A1", None, "=A1"],
        "when": pd.to_datetime(["2026-12-01"] * 5, utc=True),
        # The report's label columns are categoricals (_frames.categorical_keys).
        "category": pd.Categorical(["=A1", "x", None, "-x", "=A1"]),
    })
    report._write_csv(tmp_path / "t.csv", frame)
    back = pd.read_csv(tmp_path / "t.csv", dtype=str, keep_default_na=False)
    assert back["label"].tolist() == ["'=HYPERLINK(1)", "plain", "-2.5", "'@SUM(A1)", ""]
    assert back["mixed"].tolist() == ["1", "'+cmd", "2.5", "ok", "'-x"]
    assert back["score"].tolist() == ["-1", "2", "3", "4", "5"]
    assert back["again"].tolist() == ["'=A1", "x", "'=A1", "", "'=A1"]
    assert back["when"].tolist() == ["2026-12-01 00:00:00+00:00"] * 5
    assert back["category"].tolist() == ["'=A1", "x", "", "'-x", "'=A1"]
