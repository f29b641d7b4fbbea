"""analysis.simulation: the simulator's interface and calibration, and its Population."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis import planning, simulation
from analysis.simulation import Population


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


@pytest.mark.parametrize("latent", [0.2, 1.3, 2.9, 4.4, 5.6])
def test_expected_score_matches_monte_carlo(latent):
    rng = np.random.default_rng(0)
    n = 400_000
    z = latent + rng.normal(0, 0.3, n) + rng.normal(0, 0.2, n) + rng.uniform(0.5, 1.0, n) * rng.standard_normal(n)
    mc = np.clip(np.rint(z), 1, 5).mean()
    expected = simulation.expected_score(latent, Population(bias_sd=0.3, inconsistency=(0.5, 1.0), image_sd=0.2))
    assert expected == pytest.approx(mc, abs=0.006)


def test_latent_location_inverts_expected_score():
    targets = np.array([1.11, 1.97, 3.0, 4.32, 4.9])
    population = Population(bias_sd=0.4, inconsistency=(0.3, 0.9), image_sd=0.1)
    mu = simulation.latent_location(targets, population)
    np.testing.assert_allclose(simulation.expected_score(mu, population), targets, atol=1e-9)
    assert np.all(np.diff(mu) > 0)


def test_simulated_mos_is_calibrated_to_the_true_mos():
    # With many raters the sample MOS must approach the requested population MOS, for values near
    # the ends of the scale too (where rounding and clipping pull the latent location away).
    true = {"D": {"nn": 1.11, "mid": 2.5, "hr": 4.46}}
    ratings = simulation.simulate_study(true, n_raters=3000, n_images=4, seed=9, bias_sd=0.3, image_sd=0.0)
    got = ratings.groupby("method")["score"].agg(["mean", "std", "size"])
    for method, value in true["D"].items():
        # rater biases are shared across a rater's four images: use the rater-level standard error
        per_rater = ratings[ratings["method"] == method].groupby("rater_id")["score"].mean()
        se = per_rater.std(ddof=1) / np.sqrt(len(per_rater))
        assert abs(got.loc[method, "mean"] - value) < 4 * se, (method, got.loc[method, "mean"], se)


def test_interactions_vary_the_differences_and_keep_the_population_mos():
    # A rater x method and an image x method effect: each method's MOS stays the requested one, while
    # the a - b difference now varies between raters and between images by about the planted amount.
    true = {"D": {"a": 2.5, "b": 3.5}}
    kwargs = {"n_raters": 1500, "n_images": 40, "seed": 4, "bias_sd": 0.3, "image_sd": 0.2, "rating_fraction": 0.2}
    plain = simulation.simulate_study(true, **kwargs)
    mixed, truth = simulation.simulate_study(true, rater_method_sd=0.5, image_method_sd=0.4, return_truth=True,
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


def test_population_as_a_value_or_as_keywords_gives_the_same_study():
    # The keyword form is kept for the benchmarks and tests/ratings, which call it so (and import
    # simulate_study from analysis.planning, its old home).
    population = Population(bias_sd=0.4, inconsistency=(0.3, 0.9), image_sd=0.2, rater_method_sd=0.1)
    a = simulation.simulate_study({"D": {"a": 2.0, "b": 3.0}}, n_raters=5, n_images=3, seed=7, population=population)
    b = planning.simulate_study({"D": {"a": 2.0, "b": 3.0}}, n_raters=5, n_images=3, seed=7, bias_sd=0.4,
                                inconsistency=(0.3, 0.9), image_sd=0.2, rater_method_sd=0.1)  # fmt: skip
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(simulation.simulate_study({"D": {"a": 2.0, "b": 3.0}}, n_raters=5, n_images=3, seed=7))
    with pytest.raises(TypeError, match="not both"):
        simulation.simulate_study({"D": {"a": 2.0}}, population=population, bias_sd=0.1)
    with pytest.raises(TypeError):
        simulation.simulate_study({"D": {"a": 2.0}}, bias=0.1)  # not a Population field
    with pytest.raises(ValueError, match="inconsistency"):
        Population(inconsistency=(0.9, 0.3))
