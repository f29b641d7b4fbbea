"""analysis.screening against independent computations (loops, krippendorff, pingouin, SUREAL) and planted truth."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import warnings

import krippendorff
import numpy as np
import pandas as pd
import pingouin
import pytest
from scipy import stats as sps

from analysis import io as aio
from analysis import planning, screening
from tests.analysis.conftest import assert_unchanged

KEY = ["dataset", "image", "method"]


def _tests(ratings):
    return ratings[ratings["kind"] == "test"] if "kind" in ratings.columns else ratings


# ---------------------------------------------------------------- BT.500


def _bt500_reference(ratings):
    """Clause 2.3.1 written out stimulus by stimulus, with SciPy's kurtosis (Pearson, biased)."""
    data = _tests(ratings)
    counts = {r: [0, 0] for r in data["rater_id"].unique()}
    for _, part in data.groupby(KEY):
        u = part["score"].to_numpy(float)
        if u.size < 2:
            continue
        mean, sd = u.mean(), u.std(ddof=1)
        if sd == 0:
            continue
        beta2 = sps.kurtosis(u, fisher=False, bias=True)
        k = 2.0 if 2 <= beta2 <= 4 else np.sqrt(20.0)
        for rater, score in zip(part["rater_id"], u):
            if score > mean + k * sd:
                counts[rater][0] += 1
            elif score < mean - k * sd:
                counts[rater][1] += 1
    out = {}
    for rater, (p, q) in counts.items():
        j = (data["rater_id"] == rater).sum()
        out[rater] = (p, q, (p + q) / j > 0.05 and (p + q) > 0 and abs(p - q) / (p + q) < 0.3)
    return out


def test_bt500_matches_clause_written_out(small_study):
    ratings, _ = small_study
    before = ratings.copy()
    table = screening.bt500_screening(ratings)
    assert_unchanged(before, ratings)
    ref = _bt500_reference(ratings)
    for row in table.itertuples(index=False):
        assert (row.bt500_P, row.bt500_Q, bool(row.bt500_rejected)) == ref[row.rater_id]
        assert row.bt500_J == 48


def test_bt500_rejects_a_planted_random_rater_and_no_one_else():
    true = {"D": {"nn": 1.2, "bic": 1.9, "sr": 2.6, "gan": 3.5, "hr": 4.4}}
    ratings, truth = planning.simulate_study(true, n_raters=25, n_images=30, seed=3, n_random_raters=1,
                                             bias_sd=0.2, inconsistency=(0.3, 0.6), return_truth=True)  # fmt: skip
    table = screening.bt500_screening(ratings).set_index("rater_id")
    random_id = truth.raters.loc[truth.raters["random"], "rater_id"].item()
    assert table.loc[random_id, "bt500_rejected"]
    assert table.loc[random_id, "bt500_ratio"] > 0.05
    assert table["bt500_rejected"].sum() == 1


def test_bt500_ratio_rules_on_a_hand_made_case():
    # 19 regular raters score each "low" stimulus 1,1,1,1,2,2,2,2,3 x 11 and each "high" one
    # 5,5,5,5,4,4,4,4,3 x 11; rater "odd" scores 3, except 5 on four low stimuli and 1 on three high ones.
    # There beta_2 = 3.34 (normal), mean +- 2 S = 2.5 +- 2 (resp. 3.5 -+ 2), so P = 4 and Q = 3:
    # (P+Q)/J = 7/40 > 0.05 and |P-Q|/(P+Q) = 1/7 < 0.3, i.e. rejected.
    low = [1] * 4 + [2] * 4 + [3] * 11
    high = [5] * 4 + [4] * 4 + [3] * 11
    rows = []
    for s in range(40):
        scores = low if s < 20 else high
        rows += [(f"r{r:02d}", "D", f"i{s:02d}", "m", v) for r, v in enumerate(scores)]
        odd = 5 if s < 4 else 1 if 20 <= s < 23 else 3
        rows.append(("odd", "D", f"i{s:02d}", "m", odd))
    frame = pd.DataFrame(rows, columns=["rater_id", "dataset", "image", "method", "score"])
    u = np.array(low + [5], float)
    assert 2 <= sps.kurtosis(u, fisher=False) <= 4 and u.mean() + 2 * u.std(ddof=1) < 5  # premise
    table = screening.bt500_screening(frame).set_index("rater_id")
    assert (table.loc["odd", "bt500_P"], table.loc["odd", "bt500_Q"]) == (4, 3)
    assert table.loc["odd", "bt500_ratio"] == pytest.approx(7 / 40)
    assert table.loc["odd", "bt500_balance"] == pytest.approx(1 / 7)
    assert table.loc["odd", "bt500_rejected"]
    assert not table.drop(index="odd")["bt500_rejected"].any()
    # A consistent shift (outliers all on one side) is not rejected: |P-Q|/(P+Q) = 1.
    shifted = frame.copy()
    shifted.loc[(shifted["rater_id"] == "odd") & shifted["image"].isin(["i20", "i21", "i22"]), "score"] = 3
    row = screening.bt500_screening(shifted).set_index("rater_id").loc["odd"]
    assert (row["bt500_P"], row["bt500_Q"], row["bt500_balance"]) == (4, 0, 1.0)
    assert not row["bt500_rejected"]
    # Both limits are strict: a ratio or a balance exactly at its limit does not reject.
    # (Catches ">=" for the ratio and "<=" for the balance.)
    at_balance = screening.bt500_screening(frame, max_balance=1 / 7).set_index("rater_id")
    assert not at_balance.loc["odd", "bt500_rejected"]
    at_ratio = screening.bt500_screening(frame, max_outlier_ratio=7 / 40).set_index("rater_id")
    assert not at_ratio.loc["odd", "bt500_rejected"]


def test_bt500_limits_use_the_sd_with_n_minus_1():
    # Six raters score 1, 1, 1, 1, 2, 4: beta_2 = 3.40 (normal, k = 2), mean 5/3. With S over N - 1
    # (1.211) the upper limit is 4.09 and the 4 is inside it; with the SD over N (1.106) the limit
    # would be 3.88 and the 4 would count as outlying. (Catches an SD without the n - 1.)
    scores = [1, 1, 1, 1, 2, 4]
    frame = pd.DataFrame({"rater_id": list("abcdef"), "dataset": "D", "image": "i", "method": "m", "score": scores})
    u = np.array(scores, float)
    assert 2 <= sps.kurtosis(u, fisher=False) <= 4  # premise: the normal case
    assert u.mean() + 2 * u.std(ddof=0) < 4 < u.mean() + 2 * u.std(ddof=1)  # premise: the SDs disagree on the 4
    table = screening.bt500_screening(frame).set_index("rater_id")
    assert table["bt500_P"].sum() == 0 and table["bt500_Q"].sum() == 0


# ---------------------------------------------------------------- correlations, gold, retest


@pytest.mark.parametrize("design", ["crossed", "incomplete"])
def test_loo_correlations_match_explicit_loop(small_study, design):
    # The incomplete design matters: there the other raters' mean is over a varying number of raters,
    # so a wrong divisor (n instead of n - 1) changes the correlation, which it cannot when every
    # stimulus has the same raters.
    ratings, _ = small_study
    if design == "incomplete":
        ratings = planning.simulate_study({"D": {"a": 1.5, "b": 2.5, "c": 3.5, "d": 4.2}}, n_raters=9, n_images=6,
                                          seed=12, rating_fraction=0.5, bias_sd=0.3, inconsistency=(0.4, 0.9))  # fmt: skip
    table = screening.loo_correlations(ratings).set_index("rater_id")
    data = _tests(ratings)
    wide = data.pivot_table(index=KEY, columns="rater_id", values="score")
    for rater in wide.columns:
        others = wide.drop(columns=rater).mean(axis=1)
        x = wide[rater]
        keep = x.notna() & others.notna()
        assert table.loc[rater, "n_shared"] == keep.sum()
        pearson = sps.pearsonr(x[keep], others[keep]).statistic
        spearman = sps.spearmanr(x[keep], others[keep]).statistic
        assert table.loc[rater, "loo_pearson"] == pytest.approx(pearson, abs=1e-10)
        assert table.loc[rater, "loo_spearman"] == pytest.approx(spearman, abs=1e-10)


def test_gold_agreement_by_hand():
    frame = pd.DataFrame(
        {"rater_id": ["a", "a", "a", "a", "b", "b", "c"], "dataset": "cal", "image": list("wxyzwxw"),
         "method": ["nearest", "hr", "nearest", "hr", "nearest", "hr", "m"],
         "score": [1, 5, 2, 2, 1, 4, 3], "kind": ["gold"] * 6 + ["test"],
         "expected_score": [1, 5, 1, 5, 1, 5, np.nan]}
    )  # fmt: skip
    table = screening.gold_agreement(frame).set_index("rater_id")
    assert table.loc["a"].tolist() == [4, 0.5, 0.75, 1.0]  # errors 0, 0, 1, 3
    assert table.loc["b"].tolist() == [2, 0.5, 1.0, 0.5]
    assert table.loc["c", "n_gold"] == 0 and np.isnan(table.loc["c", "gold_exact"])


def test_test_retest_per_rater_and_summary_match_references(small_study):
    ratings, _ = small_study
    per = screening.test_retest(ratings).set_index("rater_id")
    data = ratings.set_index(["rater_id", *KEY])
    first = data[data["kind"] == "test"]["score"]
    second = data[data["kind"] == "repeat"]["score"]
    pairs = pd.concat([first.rename("a"), second.rename("b")], axis=1, join="inner").reset_index()
    for rater, part in pairs.groupby("rater_id"):
        assert per.loc[rater, "n_repeat"] == len(part) == 6
        assert per.loc[rater, "retest_mad"] == pytest.approx((part["b"] - part["a"]).abs().mean())
        if part["a"].std() > 0 and part["b"].std() > 0:
            assert per.loc[rater, "retest_r"] == pytest.approx(np.corrcoef(part["a"], part["b"])[0, 1])
    summary = screening.test_retest_summary(ratings)
    assert summary["n_pairs"] == len(pairs) == 72
    assert summary["pearson_r"] == pytest.approx(sps.pearsonr(pairs["a"], pairs["b"]).statistic)
    # Fisher z interval, written out (catches a wrong quantile, e.g. 0.5 + confidence / 3).
    z, half = np.arctanh(summary["pearson_r"]), sps.norm.ppf(0.975) / np.sqrt(len(pairs) - 3)
    assert (summary["pearson_ci_low"], summary["pearson_ci_high"]) == pytest.approx((np.tanh(z - half), np.tanh(z + half)))
    ref = sps.wilcoxon(pairs["a"], pairs["b"])
    assert summary["wilcoxon_p"] == pytest.approx(ref.pvalue) and summary["wilcoxon_statistic"] == ref.statistic
    long = pd.concat([pairs.assign(occ="first", s=pairs["a"]), pairs.assign(occ="second", s=pairs["b"])])
    long["target"] = long["rater_id"] + "/" + long["dataset"] + "/" + long["image"] + "/" + long["method"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        icc = pingouin.intraclass_corr(long, targets="target", raters="occ", ratings="s").set_index("Type")
    assert summary["icc_a1"] == pytest.approx(icc.loc["ICC(A,1)", "ICC"], abs=1e-10)


def test_duplicate_scores_without_a_kind_column_count_once_as_their_mean():
    # A frame without "kind" may hold a rater's two scores of one stimulus: screening sees one cell.
    frame = pd.DataFrame({"rater_id": ["a", "a", "a", "b", "b", "c", "c"], "dataset": "D",
                          "image": ["1", "1", "2", "1", "2", "1", "2"], "method": "m",
                          "score": [1, 3, 4, 2, 4, 2, 5]})  # fmt: skip
    table = screening.bt500_screening(frame).set_index("rater_id")
    assert table["bt500_J"].tolist() == [2, 2, 2]
    mean_cells = frame.groupby(["rater_id", "image"], as_index=False)["score"].mean().assign(dataset="D", method="m")
    assert screening.krippendorff_alpha(frame) == pytest.approx(screening.krippendorff_alpha(mean_cells))


def test_test_retest_correlation_needs_three_pairs():
    # Two pairs always correlate perfectly: no coefficient is given below three.
    frame = pd.DataFrame({"rater_id": "a", "dataset": "D", "image": ["1", "2", "1", "2"], "method": "m",
                          "score": [2, 4, 3, 5], "kind": ["test", "test", "repeat", "repeat"]})  # fmt: skip
    summary = screening.test_retest_summary(frame)
    assert summary["n_pairs"] == 2 and np.isnan(summary["pearson_r"]) and summary["mean_shift"] == 1.0


def test_test_retest_without_repeats_and_with_identical_repeats(small_study):
    ratings, _ = small_study
    none = screening.test_retest_summary(ratings[ratings["kind"] != "repeat"])
    assert none["n_pairs"] == 0 and np.isnan(none["pearson_r"])
    same = ratings.copy()
    rep = same["kind"] == "repeat"
    firsts = same[same["kind"] == "test"].set_index(["rater_id", *KEY])["score"]
    same.loc[rep, "score"] = firsts.reindex(pd.MultiIndex.from_frame(same.loc[rep, ["rater_id", *KEY]])).to_numpy()
    summary = screening.test_retest_summary(same)
    assert summary["wilcoxon_p"] == 1.0 and summary["mean_abs_diff"] == 0.0 and summary["icc_a1"] == pytest.approx(1.0)


# ---------------------------------------------------------------- MLE (P.910 Annex E / SUREAL MLE_CO)


# The estimator as SUREAL's MLE_CO computes it: the old mle_scores.
SUREAL_OPTIONS = {"min_inconsistency": 1e-3, "min_ratings": 1, "residual_df": False, "se": "diagonal"}
ISSUE_TRUE = {"D": {"a": 1.4, "b": 2.3, "c": 3.5, "d": 4.3}}
ISSUE_POPULATION = {"bias_sd": 0.4, "inconsistency": (0.4, 0.9), "image_sd": 0.3}


def _issue_case():
    """The study of issue 14 where the old estimate put r004 at the 0.001 floor and every psi_se at 0.001."""
    return planning.simulate_study(ISSUE_TRUE, n_raters=10, n_images=6, seed=100, **ISSUE_POPULATION)


def test_mle_recovers_planted_biases_and_inconsistencies():
    true = {"D": {f"m{k}": v for k, v in enumerate([1.4, 2.0, 2.6, 3.0, 3.5, 4.1])}}
    ratings, truth = planning.simulate_study(true, n_raters=30, n_images=30, seed=8, bias_sd=0.5,
                                             inconsistency=(0.3, 1.0), image_sd=0.4, return_truth=True)  # fmt: skip
    result = screening.mle_scores(ratings)
    assert result.converged and result.warning == ""
    # The columns of mle_quality.csv and of the rater table, exactly (catches a stray index column).
    assert list(result.quality.columns) == [*KEY, "n", "psi", "psi_se", "psi_ci_low", "psi_ci_high"]
    assert list(result.raters.columns) == ["rater_id", "n", "modelled", "bias", "bias_se", "inconsistency",
                                           "inconsistency_se", "at_bound", "mle_note"]  # fmt: skip
    est = result.raters.set_index("rater_id").loc[truth.raters["rater_id"]]
    planted = truth.raters["bias"].to_numpy() - truth.raters["bias"].mean()
    assert np.corrcoef(est["bias"], planted)[0, 1] > 0.9
    assert np.sqrt(np.mean((est["bias"].to_numpy() - planted) ** 2)) < 0.15
    assert np.corrcoef(est["inconsistency"], truth.raters["inconsistency"])[0, 1] > 0.8
    assert abs(est["bias"].mean()) < 1e-9  # centred convention
    # psi tracks the latent quality of each stimulus (calibration of its interval: below).
    q = result.quality.merge(truth.stimuli, on=KEY)
    assert np.corrcoef(q["psi"], q["latent"])[0, 1] > 0.95


def test_mle_intervals_cover_the_planted_latent_quality_on_a_sparse_design():
    # Balanced assignment, each rater sees 60% of 32 stimuli. The target of psi_j is the planted
    # latent quality plus the mean planted bias (psi is on the scale where the biases average zero).
    # The old estimator (SUREAL's MLE_CO, floor 0.001) reports standard errors half the real spread
    # and covers about 55%; an ML upsilon (residuals over n_i) or normal quantiles cover < 0.91.
    errors, ses, covered, old_covered = [], [], [], []
    for seed in range(40):
        ratings, truth = planning.simulate_study({"D": {"a": 1.8, "b": 2.5, "c": 3.2, "d": 3.9}}, n_raters=12,
                                                 n_images=8, seed=seed, rating_fraction=0.6, return_truth=True,
                                                 **ISSUE_POPULATION)  # fmt: skip
        offset = truth.raters["bias"].mean()
        fit = screening.mle_scores(ratings)
        q = fit.quality.merge(truth.stimuli, on=KEY)
        target = q["latent"] + offset
        if fit.converged:
            errors.append(q["psi"] - target)
            ses.append(q["psi_se"])
            covered.append((q["psi_ci_low"] <= target) & (target <= q["psi_ci_high"]))
        else:
            assert q["psi_se"].isna().all() and fit.raters["at_bound"].any()
        old = screening.mle_scores(ratings, **SUREAL_OPTIONS).quality.merge(truth.stimuli, on=KEY)
        old_se = np.where(old["psi_se"].notna(), old["psi_se"], 1e-3)  # what it reported
        old_covered.append((old["psi"] - target).abs() <= 1.96 * old_se)
    assert len(errors) >= 34  # a bound is hit in under 15% of these studies
    e, se = pd.concat(errors), pd.concat(ses)
    ratio = np.sqrt(np.mean(se**2)) / e.std()
    assert 0.8 <= ratio <= 1.25, ratio
    coverage = pd.concat(covered).mean()
    assert 0.93 <= coverage <= 0.985, coverage
    assert pd.concat(old_covered).mean() < 0.8  # premise: the old estimate was falsely precise


def test_mle_issue_case_no_longer_reports_false_precision():
    ratings = _issue_case()
    old = screening.mle_scores(ratings, **SUREAL_OPTIONS)
    at_floor = old.raters.loc[old.raters["inconsistency"] <= 1e-3, "rater_id"].tolist()
    assert at_floor == ["r004"]  # premise: the old fit copies r004 ...
    assert not old.converged and old.quality["psi_se"].isna().all() and "r004" in old.warning  # ... and now says so
    new = screening.mle_scores(ratings)
    assert new.converged and not new.raters["at_bound"].any()
    assert (new.raters["inconsistency"] > screening.ROUNDING_SD).all()
    assert (new.quality["psi_se"] > 0.15).all()  # the old fit claimed 0.001


def test_mle_raters_with_few_ratings_are_left_out_and_listed():
    ratings = _issue_case()
    extra = pd.DataFrame([{**ratings.iloc[0].to_dict(), "rater_id": "r999", "score": 5}])
    with_extra = pd.concat([ratings, extra], ignore_index=True)
    # The old fit puts the one-rating rater at the floor: psi copies that single score.
    old = screening.mle_scores(with_extra, **SUREAL_OPTIONS).raters.set_index("rater_id")
    assert old.loc["r999", "inconsistency"] == pytest.approx(1e-3)
    fit = screening.mle_scores(with_extra)
    row = fit.raters.set_index("rater_id").loc["r999"]
    assert not row["modelled"] and row["n"] == 1 and np.isnan(row["bias"]) and np.isnan(row["inconsistency"])
    assert "fewer than 10 test ratings" in row["mle_note"]
    assert (fit.raters.drop(columns="mle_note").set_index("rater_id").drop(index="r999")["modelled"]).all()
    alone = screening.mle_scores(ratings)
    pd.testing.assert_frame_equal(fit.quality.drop(columns="n"), alone.quality.drop(columns="n"))
    report = screening.rater_report(with_extra, mle=fit).set_index("rater_id")
    assert not report.loc["r999", "mle_modelled"] and "left out" in report.loc["r999", "mle_note"]


def test_mle_stops_at_max_iter_and_says_it_did_not_converge():
    # Catches an iteration loop one short of max_iter (or one that ignores it).
    ratings = _issue_case()
    assert screening.mle_scores(ratings).n_iter > 3  # premise: it needs more than three
    fit = screening.mle_scores(ratings, max_iter=3)
    assert fit.n_iter == 3 and not fit.converged
    assert fit.quality["psi_se"].isna().all() and fit.quality["psi"].notna().all()


def test_mle_bound_gives_nan_standard_errors_and_a_warning():
    ratings = _issue_case()
    fit = screening.mle_scores(ratings, min_inconsistency=5.0)  # every rater at its bound
    assert not fit.converged and fit.raters["at_bound"].all()
    assert fit.quality[["psi_se", "psi_ci_low", "psi_ci_high"]].isna().all().all()
    assert fit.raters[["bias_se", "inconsistency_se"]].isna().all().all()
    assert "lower bound 5.000" in fit.warning and "r001" in fit.warning
    assert fit.raters["mle_note"].str.contains("lower bound").all()
    assert fit.quality["psi"].notna().all()  # the estimate itself is still given


def _incomplete_design(seed=0, n_r=6, n_s=10, fraction=0.6):
    rng = np.random.default_rng(seed)
    mask = rng.random((n_r, n_s)) < fraction
    mask[:, 0] = True  # connected through the first stimulus
    mask[0] = True
    r, s = np.nonzero(mask)
    return r, s, n_r, n_s, rng.uniform(0.5, 3.0, n_r)


@pytest.mark.parametrize("cholesky_raters", [0, 10_000])
@pytest.mark.parametrize("dense_share", [0.0, 1.0])
def test_mle_full_covariance_and_leverages_match_statsmodels_wls(dense_share, cholesky_raters, monkeypatch):
    # With the weights fixed, the model is weighted least squares on stimulus dummies and
    # sum-to-zero rater effects: statsmodels' covariance (scale 1) and hat matrix are the reference.
    # Both ways of forming cov(psi, Delta) (dense blocks, sums over each stimulus' raters) are checked:
    # catches either one wrong, e.g. a partner index off by one or a block's rows misplaced; and both
    # inverses of the Schur complement (in-place Cholesky from _CHOLESKY_RATERS raters, LU below).
    monkeypatch.setattr(screening, "_DENSE_SHARE", dense_share)
    monkeypatch.setattr(screening, "_CHOLESKY_RATERS", cholesky_raters)
    sm = pytest.importorskip("statsmodels.api")
    r, s, n_r, n_s, w = _incomplete_design()
    x_psi = np.eye(n_s)[s]
    x_delta = np.eye(n_r)[r][:, :-1] - (r == n_r - 1)[:, None]  # Delta_R = -sum of the others
    x = np.hstack([x_psi, x_delta])
    y = np.random.default_rng(1).normal(size=len(r))
    fit = sm.WLS(y, x, weights=w[r]).fit(cov_type="fixed scale")
    cov = np.asarray(fit.cov_params())
    nij = screening._incidence(r, s, n_r, n_s)
    every = np.divmod(np.arange(n_s * n_r), n_r)  # cov(psi, Delta) at every (stimulus, rater), rated or not
    var_psi, cov_delta, cross = screening._rater_model_covariance(nij, w, cross_at=every)
    cross = cross.reshape(n_s, n_r)
    np.testing.assert_allclose(var_psi, np.diag(cov)[:n_s], rtol=1e-9)
    contrast = np.vstack([np.eye(n_r - 1), -np.ones(n_r - 1)])  # full Delta from the R - 1 free ones
    np.testing.assert_allclose(cov_delta, contrast @ cov[n_s:, n_s:] @ contrast.T, atol=1e-10)
    np.testing.assert_allclose(cross, cov[:n_s, n_s:] @ contrast.T, atol=1e-10)
    root = np.sqrt(w[r])[:, None]  # WLS is OLS on whitened rows; statsmodels gives OLS its hat matrix
    hat = sm.OLS(y * root[:, 0], x * root).fit().get_influence().hat_matrix_diag
    df = screening._residual_df(nij, w, r, s, n_r)
    np.testing.assert_allclose(df, np.bincount(r, weights=1 - hat, minlength=n_r), atol=1e-9)
    assert df.sum() == pytest.approx(len(r) - (n_s + n_r - 1))
    # The diagonal (SUREAL) variance 1 / sum_i w_i is smaller wherever raters differ in what they saw.
    assert (var_psi >= 1 / np.bincount(s, weights=w[r]) - 1e-12).all()


@pytest.mark.parametrize("cholesky_raters", [3000, 0])
def test_mle_residual_df_fixed_point_with_few_inversions(monkeypatch, cholesky_raters):
    """On a sparse crowd-like design the fit holds the residual degrees of freedom between R x R
    inversions, yet lands on the fixed point where each ``upsilon_i^2`` is the rater's RSS over its
    exact residual df at the reported weights (a fit that stopped on held degrees of freedom without
    a fresh check, or that never refreshed them, misses it by far more than 1e-9), and it needs a
    few inversions where recomputing them every iteration took one per iteration. With the
    Cholesky path (``cholesky_raters`` 0) the early refreshes run in float32: a fit that declared
    convergence from one, or took its standard errors from one, misses the 1e-9 checks (float32's
    error here is about 1e-7)."""
    monkeypatch.setattr(screening, "_CHOLESKY_RATERS", cholesky_raters)
    rng = np.random.default_rng(7)
    n_r, n_s, per_rater = 60, 240, 30
    psi = rng.uniform(1, 5, n_s)
    bias, noise = rng.normal(0, 0.4, n_r), rng.uniform(0.6, 1.2, n_r)
    r = np.repeat(np.arange(n_r), per_rater)
    s = np.concatenate([rng.choice(n_s, per_rater, replace=False) for _ in range(n_r)])
    frame = pd.DataFrame({"rater_id": [f"r{k:02d}" for k in r], "dataset": "D", "image": [f"i{k:03d}" for k in s],
                          "method": "m", "score": psi[s] + bias[r] + noise[r] * rng.standard_normal(len(r))})
    inversions = []  # True where a refresh inverted in float32
    counted = screening._covariance

    def counting(nij, w, single=False):
        cov = counted(nij, w, single)
        inversions.append(cov.cov_delta.dtype == np.float32)
        return cov

    monkeypatch.setattr(screening, "_covariance", counting)
    fit = screening.mle_scores(frame, tol=1e-12)
    assert fit.converged
    # 120 iterations, 5 inversions (each refresh gains about two digits; the sixth, which would only
    # confirm that psi stays within tol, is spared once two refreshes contract by < 0.1).
    assert len(inversions) <= 5 and fit.n_iter > 10 * len(inversions)
    assert any(inversions) == (cholesky_raters == 0) and not inversions[-1]
    raters = fit.raters.set_index("rater_id")
    est_psi = fit.quality.set_index("image")["psi"]
    resid = frame["score"] - frame["image"].map(est_psi) - frame["rater_id"].map(raters["bias"])
    rss = (resid**2).groupby(frame["rater_id"]).sum().to_numpy()
    r_codes = pd.factorize(frame["rater_id"], sort=True)[0]
    s_codes = pd.factorize(frame["image"], sort=True)[0]
    nij = screening._incidence(r_codes, s_codes, n_r, n_s)
    ups = raters["inconsistency"].to_numpy()
    cov = counted(nij, 1 / ups**2)
    exact_df = screening._residual_df_of(cov, 1 / ups**2, r_codes, s_codes, n_r)
    np.testing.assert_allclose(np.sqrt(rss / exact_df), ups, rtol=1e-9)
    # The standard errors come from the information at the final weights (to the tolerance).
    np.testing.assert_allclose(fit.quality.set_index("image").loc[sorted(set(frame["image"])), "psi_se"],
                               np.sqrt(cov.var_psi), rtol=1e-9)


def test_mle_standard_errors_never_come_from_a_float32_inversion(monkeypatch):
    # At a loose tolerance psi may already sit still after the first refresh, which inverts in
    # float32: the fit must still end on a float64 one and take its standard errors from it (a fit
    # that trusted the float32 refresh reports them with float32's 1e-7 error).
    monkeypatch.setattr(screening, "_CHOLESKY_RATERS", 0)
    rng = np.random.default_rng(8)
    n_r, n_s = 40, 60
    noise = rng.uniform(0.5, 1, (n_r, 1)) * rng.standard_normal((n_r, n_s))
    u = rng.uniform(1, 5, n_s)[None] + rng.normal(0, 0.3, (n_r, 1)) + noise
    frame = pd.DataFrame({"rater_id": np.repeat([f"r{k:02d}" for k in range(n_r)], n_s), "dataset": "D",
                          "image": np.tile([f"i{k:02d}" for k in range(n_s)], n_r), "method": "m", "score": u.ravel()})
    calls = []  # (inverted in float32, weights) per refresh
    counted = screening._covariance

    def counting(nij, w, single=False):
        cov = counted(nij, w, single)
        calls.append((cov.cov_delta.dtype == np.float32, w.copy()))
        return cov

    monkeypatch.setattr(screening, "_covariance", counting)
    fit = screening.mle_scores(frame, tol=1e-3)
    assert fit.converged and calls[0][0] and not calls[-1][0]
    r_codes = pd.factorize(frame["rater_id"], sort=True)[0]
    s_codes = pd.factorize(frame["image"], sort=True)[0]
    exact = counted(screening._incidence(r_codes, s_codes, n_r, n_s), calls[-1][1])
    np.testing.assert_allclose(fit.quality.sort_values("image")["psi_se"], np.sqrt(exact.var_psi), rtol=1e-12)


def test_mle_exact_properties_on_continuous_scores():
    # Shift one rater's scores by +1: their bias moves by 1 - 1/R, psi by 1/R, the rest is unchanged.
    rng = np.random.default_rng(0)
    n_r, n_s = 8, 15
    psi = rng.uniform(1, 5, n_s)
    bias = rng.normal(0, 0.4, n_r)
    noise = rng.uniform(0.4, 0.8, n_r)
    u = psi[None] + bias[:, None] + noise[:, None] * rng.standard_normal((n_r, n_s))
    frame = pd.DataFrame({"rater_id": np.repeat([f"r{k}" for k in range(n_r)], n_s), "dataset": "D",
                          "image": np.tile([f"i{k:02d}" for k in range(n_s)], n_r), "method": "m",
                          "score": u.ravel()})  # fmt: skip
    for options in ({}, SUREAL_OPTIONS):
        a = screening.mle_scores(frame, tol=1e-12, **options)
        shifted = frame.assign(score=frame["score"] + (frame["rater_id"] == "r3"))
        b = screening.mle_scores(shifted, tol=1e-12, **options)
        moved = np.where(np.arange(n_r) == 3, 1 - 1 / n_r, -1 / n_r)
        np.testing.assert_allclose(b.raters["bias"] - a.raters["bias"], moved, atol=1e-8)
        np.testing.assert_allclose(b.quality["psi"] - a.quality["psi"], 1 / n_r, atol=1e-8)
        np.testing.assert_allclose(b.raters["inconsistency"], a.raters["inconsistency"], atol=1e-8)
        # Stationarity: the estimating equations hold at the estimate; upsilon^2 is the rater's
        # residual sum of squares over n_i (ML) or over its residual degrees of freedom.
        est_bias = a.raters.set_index("rater_id")["bias"]
        est_ups = a.raters.set_index("rater_id")["inconsistency"]
        est_psi = a.quality.set_index("image")["psi"]
        resid = frame["score"] - frame["image"].map(est_psi) - frame["rater_id"].map(est_bias)
        w = 1 / frame["rater_id"].map(est_ups) ** 2
        assert np.abs((w * resid).groupby(frame["image"]).sum()).max() < 1e-8
        assert np.abs(resid.groupby(frame["rater_id"]).mean()).max() < 1e-8
        rss = (resid**2).groupby(frame["rater_id"]).sum()
        if options:
            df = frame.groupby("rater_id").size()
        else:
            r_codes = pd.factorize(frame["rater_id"], sort=True)[0]
            s_codes = pd.factorize(frame["image"], sort=True)[0]
            nij = screening._incidence(r_codes, s_codes, n_r, n_s)
            df = screening._residual_df(nij, 1 / est_ups.to_numpy() ** 2, r_codes, s_codes, n_r)
            assert (df < n_s).all()  # the fitted psi takes degrees of freedom from every rater
        np.testing.assert_allclose((rss / df) ** 0.5, est_ups, rtol=1e-7)
        # The log-likelihood is the normal model's at the estimate (catches a wrong constant).
        loglik = sps.norm.logpdf(resid, scale=frame["rater_id"].map(est_ups)).sum()
        assert a.log_likelihood == pytest.approx(loglik, rel=1e-10)


def test_mle_matches_sureal_mle_co(small_study, tmp_path):
    sureal_model = pytest.importorskip("sureal.subjective_model")
    from sureal.dataset_reader import RawDatasetReader
    from sureal.tools.misc import import_python_file

    ratings, _ = small_study
    path = tmp_path / "dataset.py"
    path.write_text(aio.sureal_dataset_text(ratings, include_repeats=False))
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reader = RawDatasetReader(import_python_file(str(path)))
        model = sureal_model.MaximumLikelihoodEstimationModelContentOblivious(reader)
        ref = model.run_modeling()
    ours = screening.mle_scores(ratings, tol=1e-10, **SUREAL_OPTIONS)
    assert ours.converged
    np.testing.assert_allclose(ours.quality["psi"], ref["quality_scores"], atol=2e-6)
    np.testing.assert_allclose(ours.quality["psi_se"], ref["quality_scores_std"], rtol=1e-5)
    order = ours.raters.set_index("rater_id").loc[ref["observers"]]
    np.testing.assert_allclose(order["bias"], ref["observer_bias"], atol=2e-6)
    np.testing.assert_allclose(order["inconsistency"], ref["observer_inconsistency"], rtol=1e-5)
    np.testing.assert_allclose(order["bias_se"], ref["observer_bias_std"], rtol=1e-5)
    np.testing.assert_allclose(order["inconsistency_se"], ref["observer_inconsistency_std"], rtol=1e-5)
    # On this complete design the default differs only by the residual degrees of freedom.
    default = screening.mle_scores(ratings, tol=1e-10)
    assert (default.raters["inconsistency"] > ours.raters["inconsistency"]).all()


# ---------------------------------------------------------------- Krippendorff


@pytest.mark.parametrize("fraction", [1.0, 0.6])
@pytest.mark.parametrize("level", ["interval", "ordinal"])
def test_krippendorff_matches_reference_package(level, fraction):
    true = {"D": {"a": 1.5, "b": 2.5, "c": 3.2, "d": 4.2}}
    ratings = planning.simulate_study(true, n_raters=9, n_images=8, seed=4, rating_fraction=fraction, image_sd=0.5)
    data = ratings[ratings["kind"] == "test"]
    matrix = data.pivot_table(index="rater_id", columns=KEY, values="score").to_numpy()
    expected = krippendorff.alpha(reliability_data=matrix, level_of_measurement=level)
    assert screening.krippendorff_alpha(ratings, level) == pytest.approx(expected, abs=1e-10)


def test_krippendorff_perfect_and_degenerate_agreement():
    frame = pd.DataFrame({"rater_id": ["a", "b"] * 3, "dataset": "D", "image": ["1", "1", "2", "2", "3", "3"],
                          "method": "m", "score": [1, 1, 3, 3, 5, 5]})  # fmt: skip
    assert screening.krippendorff_alpha(frame) == pytest.approx(1.0)
    assert np.isnan(screening.krippendorff_alpha(frame.assign(score=3)))


# ---------------------------------------------------------------- rater report


def test_rater_report_flags_the_planted_spammer_and_documents_why(small_study):
    ratings, truth = small_study
    before = ratings.copy()
    report = screening.rater_report(ratings)
    assert_unchanged(before, ratings)
    assert list(report["rater_id"]) == sorted(truth.raters["rater_id"])
    for col in ("bt500_rejected", "loo_pearson", "loo_spearman", "gold_within1", "retest_r", "retest_mad",
                "mle_bias", "mle_inconsistency", "median_response_ms", "flagged", "flag_reasons"):  # fmt: skip
        assert col in report.columns
    spammer = truth.raters.loc[truth.raters["random"], "rater_id"].item()
    row = report.set_index("rater_id").loc[spammer]
    assert row["flagged"] and "leave-one-out" in row["flag_reasons"]
    assert (report["flag_reasons"] != "").eq(report["flagged"]).all()
    off = screening.FlagRules(bt500=False, min_loo_pearson=None, min_gold_within1=None, max_retest_mad=None,
                              max_abs_bias=None)  # fmt: skip
    relaxed = screening.rater_report(ratings, off)
    assert not relaxed["flagged"].any()


def test_good_raters_are_not_flagged():
    true = {"D": {"a": 1.3, "b": 2.2, "c": 3.0, "d": 3.8, "e": 4.5}}
    ratings = planning.simulate_study(true, n_raters=20, n_images=12, seed=21, n_repeats=12, n_gold=10,
                                      bias_sd=0.25, inconsistency=(0.3, 0.5))  # fmt: skip
    report = screening.rater_report(ratings)
    assert not report["flagged"].any(), report.loc[report["flagged"], "flag_reasons"].tolist()


def test_honest_raters_with_paper_like_noise_are_rarely_flagged():
    # The paper's design (26 raters, 4 gold items) with the simulator's default noise: a
    # threshold that flags a quarter of honest raters would teach researchers to ignore flags.
    true = {"D": {"a": 1.3, "b": 2.0, "c": 2.9, "d": 3.6, "e": 4.4}}
    ratings = planning.simulate_study(true, n_raters=26, n_images=20, seed=5, n_repeats=10, n_gold=4)
    report = screening.rater_report(ratings)
    assert report["flagged"].sum() <= 2, report.loc[report["flagged"], "flag_reasons"].tolist()


def test_gold_rule_allows_one_slip_and_flags_two():
    rows = []
    for rater, misses in (("ok", 1), ("bad", 2)):
        for k in range(4):
            expected = 1 if k % 2 == 0 else 5
            score = (5 if expected == 1 else 1) if k < misses else expected
            rows.append({"rater_id": rater, "dataset": "calibration", "image": f"g{k}", "method": "nearest",
                         "score": score, "kind": "gold", "expected_score": expected})
        for k in range(6):
            rows.append({"rater_id": rater, "dataset": "D", "image": f"i{k}", "method": "m",
                         "score": 1 + k % 5, "kind": "test", "expected_score": np.nan})
    gold_only = screening.FlagRules(bt500=False, min_loo_pearson=None, max_retest_mad=None, max_abs_bias=None)
    report = screening.rater_report(pd.DataFrame(rows), gold_only).set_index("rater_id")
    assert not report.loc["ok", "flagged"]
    assert report.loc["bad", "flagged"] and "2 of 4" in report.loc["bad", "flag_reasons"]
    assert "(at most 1 allowed)" in report.loc["bad", "flag_reasons"]
    # With 10 gold items two misses are allowed and three flag: the misses are counted as
    # n * (1 - within1), not read off another power of the share (catches n ** (1 - within1) = 2).
    rows = []
    for rater, misses in (("two", 2), ("three", 3)):
        for k in range(10):
            rows.append({"rater_id": rater, "dataset": "calibration", "image": f"g{k}", "method": "nearest",
                         "score": 5 if k < misses else 1, "kind": "gold", "expected_score": 1})
    report = screening.rater_report(pd.DataFrame(rows), gold_only).set_index("rater_id")
    assert report["gold_misses"].tolist() == [3, 2]
    assert not report.loc["two", "flagged"]
    assert report.loc["three", "flag_reasons"] == "gold: 3 of 10 off by more than 1 point (at most 2 allowed)"


@pytest.mark.parametrize(("n_gold", "allowed"), [(1, 1), (4, 1), (5, 1), (9, 1), (10, 2), (14, 2), (15, 3)])
def test_gold_misses_allowed_is_a_fifth_rounded_down_and_at_least_one(n_gold, allowed):
    # 0.2 * 5 is 0.9999999999999998 in floating point: without the tolerance 5 gold items would allow 0.
    assert screening.DEFAULT_RULES.gold_misses_allowed(n_gold) == allowed
    np.testing.assert_array_equal(screening.DEFAULT_RULES.gold_misses_allowed([n_gold, 10]), [allowed, 2])


def test_flag_rules_describe_the_rules_they_apply():
    # One sentence per active rule, with the thresholds in force; the gold sentence states the rule
    # rater_report applies (one miss always allowed), not "fewer than 80% within one point", which
    # the report said before and which would flag the "ok" rater of the test above (3 of 4 = 75%).
    text = screening.DEFAULT_RULES.describe()
    assert len(text) == 5 and "BT.500-14" in text[0] and "0.05" in text[0] and "0.3" in text[0]
    gold = next(t for t in text if "gold" in t)
    assert "more than 20% (rounded down) and more than one" in gold
    custom = screening.FlagRules(bt500=False, min_loo_pearson=0.7, min_gold_within1=0.6, max_inconsistency=1.5)
    text = custom.describe()
    assert len(text) == 5 and not any("BT.500" in t for t in text)
    assert "below 0.7" in text[0] and "more than 40% (rounded down)" in text[1] and "above 1.5" in text[-1]
    assert screening.FlagRules(bt500=False, min_loo_pearson=None, min_gold_within1=None, max_retest_mad=None,
                               max_abs_bias=None).describe() == []  # fmt: skip


def test_mle_bias_and_inconsistency_rules_flag_with_their_thresholds():
    # Eight raters on continuous scores; r3 scores 1.6 points high, r5 is three times as noisy.
    # Catches a bias rule that is never applied at its default threshold, and either rule ignoring
    # its threshold.
    rng = np.random.default_rng(3)
    n_r, n_s = 8, 20
    psi = rng.uniform(1.5, 4.5, n_s)
    noise = np.where(np.arange(n_r) == 5, 0.9, 0.3)[:, None]
    u = psi[None] + noise * rng.standard_normal((n_r, n_s)) + np.where(np.arange(n_r) == 3, 1.6, 0.0)[:, None]
    frame = pd.DataFrame({"rater_id": np.repeat([f"r{k}" for k in range(n_r)], n_s), "dataset": "D",
                          "image": np.tile([f"i{k:02d}" for k in range(n_s)], n_r), "method": "m",
                          "score": u.ravel()})  # fmt: skip
    mle_only = screening.FlagRules(bt500=False, min_loo_pearson=None, min_gold_within1=None, max_retest_mad=None)
    report = screening.rater_report(frame, mle_only).set_index("rater_id")
    assert 1.2 < report.loc["r3", "mle_bias"] < 1.6  # premise: 1.6 * (1 - 1/8) = 1.4 from the others' mean
    assert report.index[report["flagged"]].tolist() == ["r3"]
    assert report.loc["r3", "flag_reasons"].startswith("MLE bias +1.")
    assert report.loc["r3", "flag_reasons"].endswith("beyond ±1")
    wider = screening.rater_report(frame, dataclasses.replace(mle_only, max_abs_bias=1.6))
    assert not wider["flagged"].any()
    noisy = dataclasses.replace(mle_only, max_abs_bias=None, max_inconsistency=0.6)
    report = screening.rater_report(frame, noisy).set_index("rater_id")
    assert report.index[report["flagged"]].tolist() == ["r5"] and report.loc["r5", "mle_inconsistency"] > 0.6
    assert report.loc["r5", "flag_reasons"].startswith("MLE inconsistency") and "> 0.6" in report.loc["r5", "flag_reasons"]


def test_reliability_summary(small_study):
    ratings, _ = small_study
    report = screening.rater_report(ratings)
    summary = screening.reliability_summary(ratings, report).set_index("measure")["value"]
    assert summary["raters"] == 12 and summary["test ratings"] == 12 * 48
    assert summary["Krippendorff alpha (interval)"] == pytest.approx(screening.krippendorff_alpha(ratings))
    assert summary["raters flagged (any rule)"] == int(report["flagged"].sum())


def test_mle_on_a_study_too_small_for_the_model_says_so():
    # The dashboard screens partial studies: with no rater at 10 ratings the model is not fitted.
    ratings = planning.simulate_study({"D": {"a": 2.0, "b": 3.0}}, n_raters=3, n_images=2, seed=1)
    fit = screening.mle_scores(ratings)
    assert not fit.converged and "cannot be fitted" in fit.warning
    assert not fit.raters["modelled"].any() and fit.quality["psi"].isna().all() and (fit.quality["n"] == 0).all()
    report = screening.rater_report(ratings, mle=fit)
    assert report["mle_note"].str.contains("fewer than 10").all()


def test_mle_on_a_disconnected_design_says_the_scales_are_not_comparable():
    # Raters r001-r004 rated only images 1-5, the others only images 6-10: nothing ties the two scales.
    ratings = planning.simulate_study({"D": {"a": 2.0, "b": 3.5}}, n_raters=8, n_images=10, seed=2)
    first = (ratings["rater_id"] <= "r004") == (ratings["image"] <= "img_005")
    fit = screening.mle_scores(ratings[first])
    assert not fit.converged and "2 groups that share no rating" in fit.warning
    assert fit.quality["psi_se"].isna().all() and fit.raters["bias"].isna().all()
    assert screening.mle_scores(ratings).converged  # premise: the full design is fine


def test_rater_model_covariance_is_exact_with_many_raters():
    # Complete design, equal weights: the centred biases add nothing to psi, var(psi_j) = 1 / (R w).
    # numpy's pinv of the singular Schur complement got this wrong by 5e8 at 260 raters (its cut-off
    # kept the null eigenvalue), which gave NaN psi_se on paper-size studies of 260 raters.
    nij = np.ones((1128, 260))
    var_psi, cov_delta, _ = screening._rater_model_covariance(nij, np.full(260, 2.0))
    np.testing.assert_allclose(var_psi, 1 / (260 * 2.0), rtol=1e-9)
    assert abs(cov_delta.sum()) < 1e-9  # no variance along the common shift (sum of biases is 0)
    assert np.all(np.linalg.eigvalsh(cov_delta) > -1e-12)


def _schur_dense(nij, w):
    """The Schur complement ``D - B^T A^-1 B`` of the rater model's information, written out densely."""
    b = np.asarray(nij, float) * w[None, :]
    return np.diag(b.sum(axis=0)) - b.T @ (b / b.sum(axis=1, keepdims=True))


@pytest.mark.parametrize("mirror_rows", [1024, 3])
def test_schur_inverse_in_place_is_the_pseudo_inverse(mirror_rows, monkeypatch):
    # The Cholesky inverse fills one triangle and is mirrored into the other by blocks of rows: with
    # blocks of 3 rows of 6 a block's rows or columns misplaced (or the diagonal block's lower
    # triangle left unfilled) breaks symmetry and the match with numpy's pseudo-inverse.
    monkeypatch.setattr(screening, "_MIRROR_ROWS", mirror_rows)
    monkeypatch.setattr(screening, "_CHOLESKY_RATERS", 0)
    r, s, n_r, n_s, w = _incomplete_design(seed=3)
    nij = screening._incidence(r, s, n_r, n_s)
    _, cov_delta, _ = screening._rater_model_covariance(nij, w)
    np.testing.assert_allclose(cov_delta, np.linalg.pinv(_schur_dense(nij.toarray(), w)), atol=1e-12)
    np.testing.assert_array_equal(cov_delta, cov_delta.T)


def test_residual_df_on_a_disconnected_design_counts_the_free_shifts(monkeypatch):
    # Two groups of raters and stimuli sharing no rating: the Schur complement has two null vectors,
    # the pseudo-inverse comes from the fallback, and [cov(Delta) Schur]_ii is no longer 1 - 1/R.
    # A fallback that kept 1 - 1/R would give degrees of freedom summing to N - (S + R - 1), one
    # too many; the reference is the hat matrix of the rank-deficient WLS fit.
    sm = pytest.importorskip("statsmodels.api")
    monkeypatch.setattr(screening, "_CHOLESKY_RATERS", 0)  # potrf reports the singularity; LU may not
    r1, s1, n_r1, n_s1, w1 = _incomplete_design(seed=4, n_r=4, n_s=6)
    r2, s2, n_r2, n_s2, w2 = _incomplete_design(seed=5, n_r=3, n_s=5)
    r, s = np.concatenate([r1, r2 + n_r1]), np.concatenate([s1, s2 + n_s1])
    n_r, n_s, w = n_r1 + n_r2, n_s1 + n_s2, np.concatenate([w1, w2])
    nij = screening._incidence(r, s, n_r, n_s)
    df = screening._residual_df(nij, w, r, s, n_r)
    x = np.hstack([np.eye(n_s)[s], np.eye(n_r)[r]])
    root = np.sqrt(w[r])[:, None]
    with warnings.catch_warnings():  # the rank deficiency is the point of the test
        warnings.simplefilter("ignore")
        hat = sm.OLS(np.ones(len(r)), x * root).fit().get_influence().hat_matrix_diag
    np.testing.assert_allclose(df, np.bincount(r, weights=1 - hat, minlength=n_r), atol=1e-9)
    assert df.sum() == pytest.approx(len(r) - (n_s + n_r - 2))
