"""Paired-comparison scales against independent implementations, published numbers and planted truth."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from sureal.pc_subjective_model import BradleyTerryMlePairedCompSubjectiveModel, ThurstoneMlePairedCompSubjectiveModel

from analysis import pairwise as pw
from analysis.pairwise_simulation import PairedPopulation, simulate_judgments

# Stigler (1994) inter-journal citations, as in Agresti (2002, p. 448) and BradleyTerry2's `citations`:
# rows are the cited journal (the winner), columns the citing one. Published BTm coefficients
# (Firth 2005; Turner & Firth 2012), Biometrika the reference: Comm Statist -2.9491, JASA -0.4796,
# JRSS-B 0.2690.
JOURNALS = ["Biometrika", "Comm Statist", "JASA", "JRSS-B"]
CITATIONS = np.array([[714, 730, 498, 221], [33, 425, 68, 17], [320, 813, 1072, 142], [284, 276, 325, 188]], float)
PUBLISHED_BT = np.array([0.0, -2.9491, -0.4796, 0.2690])


def _citation_wins() -> pd.DataFrame:
    wins = CITATIONS.copy()
    np.fill_diagonal(wins, 0.0)
    return pd.DataFrame(wins, index=JOURNALS, columns=JOURNALS)


def _random_wins(seed: int, quality=(0.0, 0.5, 1.2, 2.0, -0.3)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q = np.asarray(quality)
    w = np.zeros((q.size, q.size))
    for i in range(q.size):
        for j in range(i + 1, q.size):
            n = rng.integers(8, 40)
            k = rng.binomial(n, 1 / (1 + np.exp(-(q[i] - q[j]))))
            w[i, j], w[j, i] = k, n - k
    return w


def _glm(wins: np.ndarray, link) -> sm.GLM:
    """The same model as a binomial GLM on score differences (first method the reference)."""
    m = wins.shape[0]
    design, outcome = [], []
    for i in range(m):
        for j in range(i + 1, m):
            if wins[i, j] + wins[j, i] == 0:
                continue
            x = np.zeros(m)
            x[i], x[j] = 1.0, -1.0
            design.append(x[1:])
            outcome.append([wins[i, j], wins[j, i]])
    return sm.GLM(np.array(outcome), np.array(design), family=sm.families.Binomial(link=link)).fit(method="newton")


def _sureal_thurstone(wins: np.ndarray) -> np.ndarray:
    with contextlib.redirect_stdout(io.StringIO()):  # SUREAL's optimiser prints its progress
        scores, _, _ = ThurstoneMlePairedCompSubjectiveModel.resolve_model(wins)
    return np.asarray(scores)


def test_bradley_terry_reproduces_the_published_citation_fit():
    """Catches transposed wins (every sign flips) and a wrong MM/Newton update (values off)."""
    fit = pw.fit_scale(_citation_wins(), "bt", prior=0)
    np.testing.assert_allclose(fit.scores - fit.scores[0], PUBLISHED_BT, atol=5e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scales_equal_sureal_up_to_unit_and_offset(seed):
    """SUREAL's BT-MLE and Thurstone-MLE (sigma = 1) on simulated data and on the citation data: ours
    equal theirs after removing the mean, Thurstone times 1.4826 (JOD). Catches sigma = 1 (JOD
    unit lost) and a likelihood that drops one direction of each pair."""
    for wins in (_random_wins(seed), _citation_wins().to_numpy()):
        bt = pw.fit_scale(wins, "bt", prior=0).scores
        theirs, *_ = BradleyTerryMlePairedCompSubjectiveModel.resolve_model(wins, display=False)
        np.testing.assert_allclose(bt - bt.mean(), np.asarray(theirs) - np.mean(theirs), atol=1e-6)
        jod = pw.fit_scale(wins, "thurstone", prior=0).scores
        theirs = _sureal_thurstone(wins)
        np.testing.assert_allclose(jod / pw.JOD_SIGMA - (jod / pw.JOD_SIGMA).mean(), theirs - theirs.mean(),
                                   atol=2e-4)


@pytest.mark.parametrize("model, link", [("bt", sm.families.links.Logit()), ("thurstone", sm.families.links.Probit())])
def test_standard_errors_equal_a_binomial_glm(model, link):
    """The Fisher standard errors of differences equal statsmodels' GLM (logit / probit, Newton, so
    the observed information) - SUREAL's own BT standard errors are not used as a check: its
    off-diagonal information term is ``n / pp * 2`` where ``n / pp**2`` is meant. Catches a missing
    factor (both directions of an edge), a wrong curvature, and the JOD unit left off the SE."""
    for wins in (_random_wins(3), _citation_wins().to_numpy()):
        fit = pw.fit_scale(wins, model, prior=0)
        glm = _glm(wins, link)
        unit = pw.JOD_SIGMA if model == "thurstone" else 1.0
        np.testing.assert_allclose(fit.scores[1:] - fit.scores[0], glm.params * unit, atol=1e-6)
        np.testing.assert_allclose([fit.difference_se(k, 0) for k in range(1, wins.shape[0])], glm.bse * unit,
                                   rtol=1e-6)


def test_one_jod_is_seventy_five_percent_preference():
    """75 of 100 judgments preferring A put A exactly 1 JOD above B (and log 3 above in BT)."""
    wins = np.array([[0.0, 75.0], [25.0, 0.0]])
    jod = pw.fit_scale(wins, "thurstone", prior=0).scores
    bt = pw.fit_scale(wins, "bt", prior=0).scores
    assert jod[0] - jod[1] == pytest.approx(1.0, abs=1e-9)
    assert bt[0] - bt[1] == pytest.approx(np.log(3.0), abs=1e-9)


def test_unanimous_pairs_need_the_prior_and_it_barely_moves_dense_data():
    """A never-losing condition has no finite MLE: prior=0 says so instead of returning a huge
    number; the default prior keeps it finite, and on dense data moves scores by < 0.02 JOD."""
    unanimous = np.array([[0, 20, 15], [0, 0, 9], [0, 11, 0]], float)
    with pytest.raises(pw.ScaleNotEstimable):
        pw.fit_scale(unanimous, "thurstone", prior=0)
    finite = pw.fit_scale(unanimous, "thurstone")
    assert np.all(np.isfinite(finite.scores)) and finite.scores[0] - finite.scores[1] > 3.0
    dense = _random_wins(5) * 4
    plain = pw.fit_scale(dense, "thurstone", prior=0).scores
    weak = pw.fit_scale(dense, "thurstone").scores
    assert np.max(np.abs(plain - weak)) < 0.02


def test_disconnected_conditions_are_scaled_apart_never_across():
    """Two groups never compared with each other: each is scaled on its own (equal to fitting it
    alone, mean zero), with distinct component labels and no standard error across groups.
    Catches a fit that silently ties the groups together through the mean-zero constraint."""
    w = np.zeros((5, 5))
    w[0, 1], w[1, 0], w[1, 2], w[2, 1], w[0, 2], w[2, 0] = 30, 10, 25, 15, 35, 5
    w[3, 4], w[4, 3] = 12, 28
    fit = pw.fit_scale(w, "thurstone", prior=0)
    assert list(fit.component) == [0, 0, 0, 1, 1]
    alone = pw.fit_scale(w[:3, :3], "thurstone", prior=0)
    np.testing.assert_allclose(fit.scores[:3], alone.scores, atol=1e-9)
    assert fit.scores[3:].sum() == pytest.approx(0.0, abs=1e-9)
    assert np.isnan(fit.difference_se(0, 3)) and np.isfinite(fit.difference_se(3, 4))


def test_win_matrix_counts_the_choice_and_refuses_a_choice_outside_the_pair():
    """Rows win: catches a matrix built by side (left/right) instead of by choice."""
    judgments = pd.DataFrame({
        "rater_id": ["a", "a", "b"], "dataset": "Set5", "image": "baby",
        "method_a": ["bicubic", "srgan", "srgan"], "method_b": ["srgan", "bicubic", "bicubic"],
        "choice": ["srgan", "srgan", "bicubic"]})
    wins = pw.win_matrix(judgments, ["bicubic", "srgan"])
    assert wins.loc["srgan", "bicubic"] == 2 and wins.loc["bicubic", "srgan"] == 1
    judgments.loc[2, "choice"] = "hr"
    with pytest.raises(ValueError, match="rater 'b' on Set5/baby.*'hr'"):
        pw.win_matrix(judgments)


def test_pooled_intervals_cover_the_planted_scale():
    """120 simulated studies (20 raters, 12 images, rater and image effects): the two-way bootstrap
    intervals of the pooled scale cover the planted JOD at about 95%, and the estimates are unbiased
    up to the prior. A bootstrap over raters only covers about half the time when images vary
    (measured: 0.45-0.48 with image_sd 0.6); a Fisher interval, which treats judgments as
    independent, covers less than 90% here (asserted below)."""
    population = PairedPopulation(quality=(0.0, 0.5, 1.0, 2.0), image_sd=0.4, rater_sd=0.3)
    covered, fisher_covered, errors = [], [], []
    for seed in range(120):
        judgments, truth = simulate_judgments(20, 12, population=population, seed=seed)
        scale = pw.scale_per_dataset(judgments, methods=truth.methods, n_boot=300, seed=seed)
        target = truth.pooled_jod
        covered.append((scale["thurstone_ci_low"] <= target) & (target <= scale["thurstone_ci_high"]))
        z = 1.959964
        fisher_covered.append(np.abs(scale["thurstone"] - target) <= z * scale["thurstone_se"])
        errors.append(scale["thurstone"] - target)
    coverage = np.mean(covered, axis=0)
    assert np.all((coverage >= 0.9) & (coverage <= 0.995)), coverage
    assert np.mean(fisher_covered) < 0.9
    assert np.max(np.abs(np.mean(errors, axis=0))) < 0.05


def test_per_image_scale_recovers_each_images_planted_differences():
    """Per image, with many raters, the scale converges to that image's planted JOD, not to the
    pooled one. Catches a per-image function that pools images."""
    population = PairedPopulation(quality=(0.0, 1.0, 2.0), image_sd=0.8, rater_sd=0.2)
    judgments, truth = simulate_judgments(300, 3, population=population, seed=4)
    per_image = pw.scale_per_image(judgments, methods=truth.methods)
    for k, image in enumerate(sorted(per_image["image"].unique())):
        got = per_image[per_image["image"] == image]["thurstone"].to_numpy()
        se = per_image[per_image["image"] == image]["thurstone_se"].to_numpy()
        assert np.all(np.abs(got - truth.image_jod[k]) < 4 * se + 0.02)
