"""analysis.planning: the planners, checked against approximations and the simulator."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from analysis import planning
from analysis.simulation import Population


def test_simulation_is_deterministic():
    true = {"D": {"a": 2.0, "b": 3.0}}
    a = planning.simulate_study(true, n_raters=5, n_images=4, seed=3, n_repeats=2)
    b = planning.simulate_study(true, n_raters=5, n_images=4, seed=3, n_repeats=2)
    c = planning.simulate_study(true, n_raters=5, n_images=4, seed=4, n_repeats=2)
    pd.testing.assert_frame_equal(a, b)
    assert not a["score"].equals(c["score"])


def test_true_mos_forms_are_equivalent():
    as_dict = planning.simulate_study({"D": {"a": 2.0, "b": 3.5}}, n_raters=4, n_images=3, seed=1)
    as_frame = planning.simulate_study(pd.DataFrame({"dataset": ["D", "D"], "method": ["a", "b"], "mos": [2.0, 3.5]}),
                                       n_raters=4, n_images=3, seed=1)  # fmt: skip
    pd.testing.assert_frame_equal(as_dict, as_frame)
    per_image = pd.DataFrame({"dataset": "D", "image": ["x", "y"], "method": "a", "mos": [1.5, 4.5]})
    ratings, truth = planning.simulate_study(per_image, n_raters=3, seed=2, return_truth=True)
    assert set(ratings["image"]) == {"x", "y"}
    np.testing.assert_allclose(truth.stimuli["true_mos"], [1.5, 4.5], atol=1e-9)
    with pytest.raises(ValueError):
        planning.simulate_study({"D": {"a": 2.0}}, n_raters=2, n_random_raters=3)


def test_ci_width_planner_matches_the_normal_approximation():
    # At stimulus level the half-width is about t * sigma / sqrt(n), sigma the population sd of scores.
    true = {"D": {"m": 3.0}}
    no_images = Population(image_sd=0.0)
    plan = planning.raters_needed_for_ci_width(true, 0.3, n_images=1, level="stimulus", assurance=0.5,
                                               max_raters=120, n_sims=300, population=no_images, seed=1)  # fmt: skip
    pop = planning.simulate_study(true, n_raters=20000, n_images=1, seed=2, image_sd=0.0)["score"]
    n_approx = (1.96 * pop.std() / 0.3) ** 2
    assert plan.n_raters is not None
    assert abs(plan.n_raters - n_approx) <= 0.15 * n_approx + 2, (plan.n_raters, n_approx)
    curve = plan.curve.set_index("n_raters")
    assert curve["half_width_mean"].is_monotonic_decreasing
    assert curve.loc[plan.n_raters, "share_meeting"] >= 0.5 > curve.loc[plan.n_raters - 1, "share_meeting"]
    stricter = planning.raters_needed_for_ci_width(true, 0.2, n_images=1, level="stimulus", assurance=0.5,
                                                   max_raters=120, n_sims=300, population=no_images, seed=1)  # fmt: skip
    assert stricter.n_raters > plan.n_raters
    impossible = planning.raters_needed_for_ci_width(true, 0.01, n_images=1, max_raters=10, n_sims=20)
    assert impossible.n_raters is None
    with pytest.raises(ValueError, match="rater x method"):  # a population the planners cannot simulate
        planning.raters_needed_for_ci_width(true, 0.3, population=Population(rater_method_sd=0.2))


def test_method_level_planner_is_consistent_with_mos_table():
    true = {"D": {"a": 2.0, "b": 3.5}}
    plan = planning.raters_needed_for_ci_width(true, 0.15, n_images=10, level="method", max_raters=40, n_sims=100,
                                               seed=3)  # fmt: skip
    assert plan.n_raters is not None
    row = plan.curve.set_index("n_raters").loc[plan.n_raters]
    assert row["half_width_q"] <= 0.15 + 1e-12
    # Approximate check against the formula with the pooled sd of one simulated study.
    from analysis import stats

    sim = planning.simulate_study(true, n_raters=plan.n_raters, n_images=10, seed=4, image_sd=0.3)
    widest = ((stats.mos_table(sim)["ci_high"] - stats.mos_table(sim)["ci_low"]) / 2).max()
    assert widest == pytest.approx(0.15, abs=0.04)


def test_power_is_alpha_under_the_null_and_grows_with_raters():
    null = planning.power_for_difference(3.0, 3.0, [10], n_images=8, n_sims=400, seed=1)
    assert null.loc[0, "power"] <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 400)
    assert null.loc[0, "power_low"] <= null.loc[0, "power"] <= null.loc[0, "power_high"]
    curve = planning.power_for_difference(3.0, 3.25, [3, 6, 12, 24], n_images=8, n_sims=200, seed=1)
    assert curve["power"].is_monotonic_increasing and curve["power"].iloc[-1] > 0.8
    # The Clopper-Pearson interval against SciPy's binomtest.
    k = int(round(curve.loc[1, "power"] * 200))
    ci = sps.binomtest(k, 200).proportion_ci(method="exact")
    assert (curve.loc[1, "power_low"], curve.loc[1, "power_high"]) == pytest.approx((ci.low, ci.high))


def test_raters_needed_for_power():
    plan = planning.raters_needed_for_power(3.0, 3.3, power=0.8, n_images=6, max_raters=30, n_sims=150, seed=2)
    assert plan.n_raters is not None
    curve = plan.curve.set_index("n_raters")["power"]
    assert curve.loc[plan.n_raters] >= 0.8 and (curve.loc[: plan.n_raters - 1] < 0.8).all()


def test_stacked_wilcoxon_p_values_equal_scipy_row_by_row():
    # The planners evaluate many small studies at once; their p-values must be SciPy's, including the
    # n <= 13 permutation path with ties and zeros.
    rng = np.random.default_rng(0)
    for n in (4, 9, 20):
        x = rng.integers(1, 6, (5, n)).astype(float)
        y = rng.integers(1, 6, (5, n)).astype(float)
        x[0] = y[0]
        x[0, 0] += 1  # one non-zero difference
        ours = planning._wilcoxon_p(x, y)
        ref = [sps.wilcoxon(a, b).pvalue for a, b in zip(x, y)]
        np.testing.assert_allclose(ours, ref, rtol=1e-12)
