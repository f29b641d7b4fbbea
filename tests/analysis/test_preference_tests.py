"""Per-pair preference tests and fool rates: against scipy/statsmodels, and their level on null studies."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

from analysis.pairwise_simulation import PairedPopulation, simulate_judgments
from analysis.preference_tests import fool_rates, pair_tests


def test_pair_tests_match_scipy_and_statsmodels():
    """Binomial p, Clopper-Pearson interval and Holm equal the independent implementations; the
    per-rater majorities are counted by hand. Catches a one-sided p, a normal-approximation interval,
    Bonferroni or unadjusted p in the Holm column, and wins counted for the wrong method of a pair."""
    judgments, truth = simulate_judgments(9, 4, seed=1)
    tests = pair_tests(judgments, methods=truth.methods)
    assert len(tests) == 6 and list(tests["method_a"].head(3)) == ["m0", "m0", "m0"]
    for row in tests.itertuples():
        shown = {row.method_a, row.method_b}
        pair = judgments[judgments["method_a"].isin(shown) & judgments["method_b"].isin(shown)]
        wins = int((pair["choice"] == row.method_a).sum())
        assert (row.n, row.wins_a) == (len(pair), wins)
        assert row.p_binomial == pytest.approx(sps.binomtest(wins, len(pair)).pvalue, rel=1e-12)
        low, high = proportion_confint(wins, len(pair), alpha=0.05, method="beta")
        assert (row.share_ci_low, row.share_ci_high) == (pytest.approx(low, rel=1e-9), pytest.approx(high, rel=1e-9))
        lead = pair.assign(won=pair["choice"] == row.method_a).groupby("rater_id")["won"].agg(
            lambda s: np.sign(2 * s.sum() - len(s)))
        assert (row.raters_a, row.raters_b, row.raters_tied) == ((lead > 0).sum(), (lead < 0).sum(), (lead == 0).sum())
    np.testing.assert_allclose(tests["p_binomial_holm"], multipletests(tests["p_binomial"], method="holm")[1])
    np.testing.assert_allclose(tests["p_sign_holm"], multipletests(tests["p_sign"], method="holm")[1])


def test_sign_test_over_raters_holds_its_level_where_the_judgment_test_does_not():
    """Null studies (two equally good methods) whose raters have strong personal tastes: the
    judgment-level binomial test rejects far more than 5% (it treats a rater's 10 judgments as 10
    independent people), the sign test over raters stays at or below 5%. Catches a 'rater' test that
    is really on judgments."""
    population = PairedPopulation(quality=(0.0, 0.0), image_sd=0.0, rater_sd=1.5)
    binomial, sign = [], []
    for seed in range(300):
        judgments, _ = simulate_judgments(15, 10, population=population, seed=seed)
        row = pair_tests(judgments).iloc[0]
        binomial.append(row.p_binomial < 0.05)
        sign.append(row.p_sign < 0.05)
    assert np.mean(binomial) > 0.3
    assert np.mean(sign) <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / 300)


def _two_afc(fool: dict, raters: int = 40, images: int = 10, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for r in range(raters):
        for method, rate in fool.items():
            for i in range(images):
                fooled = rng.random() < rate
                left = rng.random() < 0.5
                rows.append((f"r{r}", "Set14", f"i{i}", method if left else "hr", "hr" if left else method,
                             method if fooled else "hr"))
    return pd.DataFrame(rows, columns=["rater_id", "dataset", "image", "method_a", "method_b", "choice"])


def test_fool_rate_recovers_the_planted_rate_with_exact_intervals():
    """Planted fool rates 0.1 and 0.4: estimates within 3 standard errors, Clopper-Pearson equal to
    statsmodels' beta interval. Catches counting 'chose hr' as fooled (rates 0.9 and 0.6)."""
    judgments = _two_afc({"bicubic": 0.1, "srgan": 0.4})
    rates = fool_rates(judgments, n_boot=500).set_index("method")
    for method, planted in (("bicubic", 0.1), ("srgan", 0.4)):
        row = rates.loc[method]
        assert abs(row.fool_rate - planted) < 3 * np.sqrt(planted * (1 - planted) / row.n)
        low, high = proportion_confint(row.fooled, row.n, alpha=0.05, method="beta")
        assert (row.cp_low, row.cp_high) == (pytest.approx(low, rel=1e-9), pytest.approx(high, rel=1e-9))
        assert row.rater_ci_low < row.fool_rate < row.rater_ci_high
    assert rates.loc["bicubic", "p_binomial"] < 1e-10


def test_fool_rate_ignores_judgments_without_the_reference():
    """A pair of two methods (no HR) says nothing about being taken for real."""
    judgments = _two_afc({"srgan": 0.4}, raters=5)
    extra = pd.DataFrame([("r0", "Set14", "i0", "srgan", "bicubic", "srgan")] * 50, columns=judgments.columns)
    rates = fool_rates(pd.concat([judgments, extra]), n_boot=0)
    assert list(rates["method"]) == ["srgan"] and rates["n"].iloc[0] == len(judgments)
