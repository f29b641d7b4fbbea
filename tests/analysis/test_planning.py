"""analysis.planning: the simulator's interface and calibration, and the planners."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from analysis import planning


def test_simulated_frame_follows_the_interface(small_study):
    ratings, truth = small_study
    assert list(ratings.columns) == ["rater_id", "dataset", "image", "method", "score", "kind", "expected_score",
                                     "response_ms", "created_at", "position"]  # fmt: skip
    assert ratings["score"].dtype.kind == "i" and ratings["score"].between(1, 5).all()
    assert set(ratings["kind"]) == {"test", "repeat", "gold"}
    per_rater = ratings.groupby(["rater_id", "kind"]).size().unstack()
    assert (per_rater["test"] == 48).all() and (per_rater["repeat"] == 6).all() and (per_rater["gold"] == 6).all()
    test = ratings[ratings["kind"] == "test"]
    assert not test.duplicated(["rater_id", "dataset", "image", "method"]).any()
    # A repeat is the later presentation of a test item of the same rater.
    keyed = ratings.set_index(["rater_id", "dataset", "image", "method", "kind"])["position"]
    for (rater, d, i, m, _), pos in keyed.xs("repeat", level="kind", drop_level=False).items():
        assert keyed.loc[(rater, d, i, m, "test")] < pos
    gold = ratings[ratings["kind"] == "gold"]
    assert set(gold["expected_score"]) == {1.0, 5.0} and (gold["position"] <= 6).all()
    assert test["expected_score"].isna().all()
    assert (ratings.groupby("rater_id")["position"].apply(lambda p: sorted(p) == list(range(1, len(p) + 1)))).all()
    assert ratings["created_at"].is_monotonic_increasing and str(ratings["created_at"].dt.tz) == "UTC"
    assert truth.raters["random"].sum() == 1 and len(truth.stimuli) == 48


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


@pytest.mark.parametrize("latent", [0.2, 1.3, 2.9, 4.4, 5.6])
def test_expected_score_matches_monte_carlo(latent):
    rng = np.random.default_rng(0)
    n = 400_000
    z = latent + rng.normal(0, 0.3, n) + rng.normal(0, 0.2, n) + rng.uniform(0.5, 1.0, n) * rng.standard_normal(n)
    mc = np.clip(np.rint(z), 1, 5).mean()
    expected = planning.expected_score(latent, bias_sd=0.3, inconsistency=(0.5, 1.0), image_sd=0.2)
    assert expected == pytest.approx(mc, abs=0.006)


def test_latent_location_inverts_expected_score():
    targets = np.array([1.11, 1.97, 3.0, 4.32, 4.9])
    mu = planning.latent_location(targets, bias_sd=0.4, inconsistency=(0.3, 0.9), image_sd=0.1)
    np.testing.assert_allclose(planning.expected_score(mu, 0.4, (0.3, 0.9), 0.1), targets, atol=1e-9)
    assert np.all(np.diff(mu) > 0)


def test_simulated_mos_is_calibrated_to_the_true_mos():
    # With many raters the sample MOS must approach the requested population MOS, for values near
    # the ends of the scale too (where rounding and clipping pull the latent location away).
    true = {"D": {"nn": 1.11, "mid": 2.5, "hr": 4.46}}
    ratings = planning.simulate_study(true, n_raters=3000, n_images=4, seed=9, bias_sd=0.3, image_sd=0.0)
    got = ratings.groupby("method")["score"].agg(["mean", "std", "size"])
    for method, value in true["D"].items():
        # rater biases are shared across a rater's four images: use the rater-level standard error
        per_rater = ratings[ratings["method"] == method].groupby("rater_id")["score"].mean()
        se = per_rater.std(ddof=1) / np.sqrt(len(per_rater))
        assert abs(got.loc[method, "mean"] - value) < 4 * se, (method, got.loc[method, "mean"], se)


def test_ci_width_planner_matches_the_normal_approximation():
    # At stimulus level the half-width is about t * sigma / sqrt(n), sigma the population sd of scores.
    true = {"D": {"m": 3.0}}
    plan = planning.raters_needed_for_ci_width(true, 0.3, n_images=1, level="stimulus", assurance=0.5,
                                               max_raters=120, n_sims=300, image_sd=0.0, seed=1)  # fmt: skip
    pop = planning.simulate_study(true, n_raters=20000, n_images=1, seed=2, image_sd=0.0)["score"]
    n_approx = (1.96 * pop.std() / 0.3) ** 2
    assert plan.n_raters is not None
    assert abs(plan.n_raters - n_approx) <= 0.15 * n_approx + 2, (plan.n_raters, n_approx)
    curve = plan.curve.set_index("n_raters")
    assert curve["half_width_mean"].is_monotonic_decreasing
    assert curve.loc[plan.n_raters, "share_meeting"] >= 0.5 > curve.loc[plan.n_raters - 1, "share_meeting"]
    stricter = planning.raters_needed_for_ci_width(true, 0.2, n_images=1, level="stimulus", assurance=0.5,
                                                   max_raters=120, n_sims=300, image_sd=0.0, seed=1)  # fmt: skip
    assert stricter.n_raters > plan.n_raters
    impossible = planning.raters_needed_for_ci_width(true, 0.01, n_images=1, max_raters=10, n_sims=20)
    assert impossible.n_raters is None


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


def test_interactions_vary_the_differences_and_keep_the_population_mos():
    # A rater x method and an image x method effect: each method's MOS stays the requested one, while
    # the a - b difference now varies between raters and between images by about the planted amount.
    true = {"D": {"a": 2.5, "b": 3.5}}
    kwargs = {"n_raters": 1500, "n_images": 40, "seed": 4, "bias_sd": 0.3, "image_sd": 0.2, "rating_fraction": 0.2}
    plain = planning.simulate_study(true, **kwargs)
    mixed, truth = planning.simulate_study(true, rater_method_sd=0.5, image_method_sd=0.4, return_truth=True,
                                           **kwargs)  # fmt: skip
    for method, value in true["D"].items():
        per_rater = mixed[mixed["method"] == method].groupby("rater_id")["score"].mean()
        assert abs(per_rater.mean() - value) < 4 * per_rater.std() / np.sqrt(len(per_rater)) + 0.01, method

    def spread(frame, unit):
        cell = frame.groupby([unit, "method"])["score"].mean().unstack()
        return (cell["a"] - cell["b"]).var()

    # Between images: 2 x 0.4^2 more variance of the difference, shrunk a little by rounding.
    assert spread(mixed, "image") - spread(plain, "image") == pytest.approx(2 * 0.4**2, rel=0.35)
    assert spread(mixed, "rater_id") - spread(plain, "rater_id") > 0.5 * 2 * 0.5**2
    # Each stimulus' latent location carries its own image x method draw.
    lat = truth.stimuli.pivot_table(index="image", columns="method", values="latent")
    assert (lat["a"] - lat["b"]).std() == pytest.approx(np.sqrt(2) * 0.4, rel=0.3)
