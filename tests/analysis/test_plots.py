"""analysis.plots: each function draws what its data says on the given axes and returns them."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from analysis import plots, stats, tables
from tests.analysis.conftest import assert_unchanged

ORDER = ["nearest", "bicubic", "srgan-vgg54", "hr"]


def _axes():
    fig = Figure(figsize=(8, 4))
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def test_rating_distribution_shows_shares_and_means(small_study):
    ratings, _ = small_study
    before = ratings.copy()
    fig, ax = _axes()
    assert plots.plot_rating_distribution(ratings, ax, dataset="BSD100") is ax
    assert_unchanged(before, ratings)
    fig.canvas.draw()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["NN", "Bicubic", "SRGAN", "HR"]
    image = ax.get_images()[0].get_array()
    np.testing.assert_allclose(np.asarray(image).sum(axis=0), 1.0)  # each column is a distribution
    test = ratings[(ratings["kind"] == "test") & (ratings["dataset"] == "BSD100")]
    share = (test[test["method"] == "nearest"]["score"] == 1).mean()
    assert image[0, 0] == pytest.approx(share)  # bin 1 of NN
    (means,) = [line for line in ax.get_lines() if line.get_marker() == "D"]
    np.testing.assert_allclose(means.get_ydata(), test.groupby("method")["score"].mean().reindex(ORDER))
    assert "72 ratings per method" in ax.get_title()


def test_mos_plot_error_bars(small_study):
    ratings, _ = small_study
    mos = stats.mos_table(ratings).merge(stats.bootstrap_mos_ci(ratings, n_boot=200), on=["dataset", "method"])
    for interval, (lo, hi) in (("t", ("ci_low", "ci_high")), ("bootstrap", ("boot_low", "boot_high"))):
        fig, ax = _axes()
        assert plots.plot_mos(mos, ax, interval=interval) is ax
        containers = ax.containers
        assert len(containers) == 2  # one per dataset
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["Set5", "BSD100"]
        for container, dataset in zip(containers, ["Set5", "BSD100"]):
            part = mos[mos["dataset"] == dataset].set_index("method").loc[ORDER]
            np.testing.assert_allclose(container.lines[0].get_ydata(), part["mos"])
            segments = container.lines[2][0].get_segments()
            np.testing.assert_allclose([s[0][1] for s in segments], part[lo])
            np.testing.assert_allclose([s[1][1] for s in segments], part[hi])
        assert ax.get_title().endswith("(95% t interval)" if interval == "t" else "(95% two-way bootstrap interval)")
    fig, ax = _axes()
    plots.plot_mos(mos, ax, interval="bootstrap", confidence=0.8)  # the level the frame was computed at
    assert "80% two-way bootstrap interval" in ax.get_title() and "95" not in ax.get_title()
    with pytest.raises(ValueError):
        plots.plot_mos(mos, ax, interval="z")


def test_perception_distortion_plane(small_study, small_stimuli):
    ratings, _ = small_study
    mos = stats.mos_table(ratings)
    corr = stats.metric_correlations(ratings, small_stimuli, n_boot=200)
    for metric in ("psnr_y", "ssim_y", "lpips"):
        fig, ax = _axes()
        assert plots.plot_perception_distortion(mos, small_stimuli, ax, "Set5", metric=metric, correlations=corr) is ax
        row = corr[(corr["dataset"] == "Set5") & (corr["metric"] == metric)].iloc[0]
        assert f"Spearman ρ = {row.spearman:+.2f}" in ax.get_title() and "Kendall τ" in ax.get_title()
        assert len(ax.containers) == 3  # NN, Bicubic, SRGAN; HR has no distortion value
        means = stats.metric_means(small_stimuli).set_index(["dataset", "method"])
        xs = sorted(c.lines[0].get_xdata()[0] for c in ax.containers)
        expected = sorted(means.loc[("Set5", m), metric] for m in ["nearest", "bicubic", "srgan-vgg54"])
        np.testing.assert_allclose(xs, expected)
        hr = mos[(mos["dataset"] == "Set5") & (mos["method"] == "hr")]["mos"].item()
        assert any(np.allclose(line.get_ydata(), hr) for line in ax.get_lines())
        assert ax.get_xlabel() == plots.METRIC_LABELS[metric]
    labels = {a.get_text() for a in ax.texts}
    assert {tables.method_label(m) for m in ["nearest", "bicubic", "srgan-vgg54"]} <= labels
