"""Rater screening and reliability of a MOS study.

Every function takes the long ``ratings`` frame of :mod:`analysis.stats` and returns a new
DataFrame (or a small result object of DataFrames). Test rows (``kind == "test"``, or all rows when
there is no ``kind`` column) are the study; ``kind == "repeat"`` rows are second presentations of a
test item and ``kind == "gold"`` rows are calibration checks with an ``expected_score``.

:func:`rater_report` gathers everything per rater and applies the flagging rules.

References
----------
1. ITU-R BT.500-14 (2019). Methodologies for the subjective assessment of the quality of television
   images, Annex 1, clause 2.3.1 (screening of the observers).
2. ITU-T P.910 (2022). Subjective video quality assessment methods for multimedia applications,
   Annex E (subject bias and inconsistency removal).
3. Li, Z., Bampis, C. G. (2017). Recover subjective quality scores from noisy measurements. Data
   Compression Conference, 52-61.
4. Krippendorff, K. (2011). Computing Krippendorff's alpha-reliability. Annenberg School for
   Communication Departmental Papers 43, University of Pennsylvania.
5. Ledig, C. et al. (2017). CVPR, section 3.3 and supplement (calibration with NN = 1 and HR = 5;
   test-retest pilot on 10 BSD100 images).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import sparse
from scipy import stats as sps
from scipy.linalg import lapack
from scipy.sparse import csgraph

from analysis._frames import STIMULUS_KEY, gold_misses_allowed, kind_rows, level_label, require_columns, test_rows

__all__ = [
    "DEFAULT_RULES",
    "FlagRules",
    "MLEResult",
    "bt500_screening",
    "gold_agreement",
    "krippendorff_alpha",
    "loo_correlations",
    "mle_scores",
    "rater_report",
    "reliability_summary",
    "retest_pairs",
    "test_retest",
    "test_retest_summary",
]


def _cells(ratings: pd.DataFrame) -> pd.DataFrame:
    """Test rows reduced to one score per (rater, stimulus); duplicates (no ``kind`` column) averaged."""
    data = test_rows(ratings)
    keys = ["rater_id", *STIMULUS_KEY]
    if data.duplicated(keys).any():
        data = data.groupby(keys, sort=False, as_index=False)["score"].mean()
    return data[[*keys, "score"]].reset_index(drop=True)


def _stimulus_codes(data: pd.DataFrame) -> tuple[np.ndarray, int]:
    codes = data.groupby(list(STIMULUS_KEY), sort=False).ngroup().to_numpy()
    return codes, int(codes.max()) + 1 if codes.size else 0


def _rater_index(frame: pd.DataFrame) -> pd.Index:
    """Every rater of ``frame``, sorted by name: the rows of each per-rater table."""
    return pd.Index(sorted(frame["rater_id"].unique(), key=str), name="rater_id")


def _per_rater(table: pd.DataFrame, raters: pd.Index, count: str) -> pd.DataFrame:
    """``table`` (indexed by rater) with one row per rater of ``raters``, as a ``rater_id`` column.

    Raters absent from ``table`` (no shared stimulus, no gold item, no repeat) get ``count`` 0 and
    NaN statistics, so every per-rater table lists every rater.
    """
    out = table.reindex(raters)
    out[count] = out[count].fillna(0).astype(int)
    return out.rename_axis("rater_id").reset_index()


# --------------------------------------------------------------------------------------------
# ITU-R BT.500-14 observer screening
# --------------------------------------------------------------------------------------------

#: The two ratio limits of BT.500-14 Annex 1 clause 2.3.1: a rater is rejected when more than 5% of
#: their scores are outlying and those outliers are not mostly on one side (balance below 30%).
BT500_MAX_OUTLIER_RATIO = 0.05
BT500_MAX_BALANCE = 0.3


def bt500_screening(
    ratings: pd.DataFrame,
    max_outlier_ratio: float = BT500_MAX_OUTLIER_RATIO,
    max_balance: float = BT500_MAX_BALANCE,
) -> pd.DataFrame:
    """Observer screening of ITU-R BT.500-14, Annex 1, clause 2.3.1 (the beta_2 kurtosis test).

    Parameters
    ----------
    ratings : pandas.DataFrame
        Long ratings frame; test rows are screened.
    max_outlier_ratio : float
        First ratio limit of the clause, 5 %.
    max_balance : float
        Second ratio limit of the clause, 30 %.

    Returns
    -------
    pandas.DataFrame
        One row per rater: ``rater_id, bt500_J, bt500_P, bt500_Q, bt500_ratio, bt500_balance,
        bt500_rejected``.

    Notes
    -----
    For every test presentation (stimulus ``j``: dataset, image and method) over the ``N`` raters
    who scored it, with mean ``u_j`` and standard deviation ``S_j`` (``N - 1`` in the denominator,
    as in clause 2.2 of the same Annex), the kurtosis coefficient is
    ``beta_2j = m_4 / m_2^2`` with ``m_x = sum_i (u_ij - u_j)^x / N``. If ``2 <= beta_2j <= 4`` the
    scores are taken as normally distributed and the limits are ``u_j +- 2 S_j``, otherwise
    ``u_j +- sqrt(20) S_j``. Each score strictly above the upper limit adds one to the rater's
    ``P_i``, each one strictly below the lower limit to ``Q_i``. With ``J_i`` the rater's number of
    scores, the rater is rejected when ``(P_i + Q_i) / J_i > 0.05`` and
    ``|P_i - Q_i| / (P_i + Q_i) < 0.3``: many outlying scores that are not a consistent shift.

    A stimulus with fewer than two raters cannot be screened and is skipped (its scores still count
    in ``J_i``). When every rater gave a stimulus the same score, ``m_2 = 0`` and ``beta_2`` is
    undefined; such a stimulus has no score outside ``u_j +- k S_j = u_j`` and adds nothing.
    ``bt500_balance`` is NaN when ``P_i + Q_i = 0``.

    References
    ----------
    1. ITU-R BT.500-14 (10/2019), Annex 1, clause 2.3.1.
    """
    data = _cells(ratings)
    codes, n_stim = _stimulus_codes(data)
    u = data["score"].to_numpy(dtype=float)
    n = np.bincount(codes, minlength=n_stim).astype(float)
    mean = np.bincount(codes, weights=u, minlength=n_stim) / np.maximum(n, 1)
    dev = u - mean[codes]
    m2 = np.bincount(codes, weights=dev**2, minlength=n_stim) / np.maximum(n, 1)
    m4 = np.bincount(codes, weights=dev**4, minlength=n_stim) / np.maximum(n, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        beta2 = m4 / m2**2
        sd = np.sqrt(m2 * n / (n - 1.0))
    normal = (beta2 >= 2.0) & (beta2 <= 4.0)
    k = np.where(normal, 2.0, np.sqrt(20.0))
    screenable = (n >= 2)[codes]
    upper = (mean + k * np.nan_to_num(sd))[codes]
    lower = (mean - k * np.nan_to_num(sd))[codes]
    # A tiny tolerance keeps floating-point noise (e.g. 4.0000000001 > 4) from counting as outlying.
    eps = 1e-9
    above = screenable & (u > upper + eps)
    below = screenable & (u < lower - eps)
    out = pd.DataFrame({"rater_id": data["rater_id"], "above": above, "below": below})
    per = out.groupby("rater_id", sort=True).agg(
        bt500_J=("above", "size"), bt500_P=("above", "sum"), bt500_Q=("below", "sum")
    )
    per[["bt500_P", "bt500_Q"]] = per[["bt500_P", "bt500_Q"]].astype(int)
    pq = per["bt500_P"] + per["bt500_Q"]
    per["bt500_ratio"] = pq / per["bt500_J"]
    per["bt500_balance"] = ((per["bt500_P"] - per["bt500_Q"]).abs() / pq).where(pq > 0)
    per["bt500_rejected"] = (per["bt500_ratio"] > max_outlier_ratio) & (per["bt500_balance"] < max_balance)
    return per.reset_index()


# --------------------------------------------------------------------------------------------
# Agreement with the other raters, gold items, test-retest
# --------------------------------------------------------------------------------------------


def _pearson_by(groups: pd.Series, x: pd.Series, y: pd.Series) -> pd.Series:
    frame = pd.DataFrame({"g": groups.to_numpy(), "x": x.to_numpy(), "y": y.to_numpy()})
    frame["x"] -= frame.groupby("g")["x"].transform("mean")
    frame["y"] -= frame.groupby("g")["y"].transform("mean")
    frame["xy"] = frame["x"] * frame["y"]
    frame["xx"] = frame["x"] ** 2
    frame["yy"] = frame["y"] ** 2
    s = frame.groupby("g", sort=True)[["xy", "xx", "yy"]].sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        r = s["xy"] / np.sqrt(s["xx"] * s["yy"])
    # Constant scores have no correlation; guard against round-off making 0/0 look finite.
    return r.where((s["xx"] > 1e-12) & (s["yy"] > 1e-12))


def loo_correlations(ratings: pd.DataFrame) -> pd.DataFrame:
    """Each rater's correlation with the mean of the other raters (leave-one-out) on shared stimuli.

    Returns
    -------
    pandas.DataFrame
        ``rater_id, n_shared, loo_pearson, loo_spearman``: over the rater's test stimuli that at
        least one other rater scored, the Pearson and Spearman correlation between the rater's score
        and the other raters' mean score of the same stimulus. NaN when fewer than 3 stimuli are
        shared or either side is constant.

    Notes
    -----
    Leaving the rater out keeps their own score from inflating the correlation, which matters with
    few raters. This is the per-subject correlation check recommended by ITU-T P.910 (2022)
    (subjects correlating poorly with the rest are candidates for removal).

    References
    ----------
    1. ITU-T P.910 (2022), clause 12 and Annex E (subject screening by correlation).
    """
    data = _cells(ratings)
    codes, n_stim = _stimulus_codes(data)
    u = data["score"].to_numpy(dtype=float)
    total = np.bincount(codes, weights=u, minlength=n_stim)
    count = np.bincount(codes, minlength=n_stim)
    others = count[codes] - 1
    with np.errstate(invalid="ignore", divide="ignore"):
        loo = (total[codes] - u) / others
    keep = others >= 1
    frame = pd.DataFrame({"rater_id": data["rater_id"].to_numpy()[keep], "x": u[keep], "y": loo[keep]})
    n_shared = frame.groupby("rater_id", sort=True).size().rename("n_shared")
    pearson = _pearson_by(frame["rater_id"], frame["x"], frame["y"]).rename("loo_pearson")
    rx = frame.groupby("rater_id")["x"].rank(method="average")
    ry = frame.groupby("rater_id")["y"].rank(method="average")
    spearman = _pearson_by(frame["rater_id"], rx, ry).rename("loo_spearman")
    out = pd.concat([n_shared, pearson, spearman], axis=1)
    out.loc[out["n_shared"] < 3, ["loo_pearson", "loo_spearman"]] = np.nan
    return _per_rater(out, _rater_index(data), "n_shared")


def gold_agreement(ratings: pd.DataFrame) -> pd.DataFrame:
    """Agreement of each rater with the expected score of gold (calibration) items.

    Returns
    -------
    pandas.DataFrame
        ``rater_id, n_gold, gold_exact, gold_within1, gold_mae``: the share of the rater's gold items
        scored exactly as expected, within one point, and the mean absolute error. Raters without
        gold items have ``n_gold = 0`` and NaN shares. In the paper's calibration NN is expected
        as 1 and HR as 5.
    """
    gold = kind_rows(ratings, "gold")
    cols = ["n_gold", "gold_exact", "gold_within1", "gold_mae"]
    if gold.empty:
        out = pd.DataFrame(np.nan, index=pd.Index([], name="rater_id"), columns=cols)
    else:
        require_columns(gold, ["expected_score"])
        err = (gold["score"] - pd.to_numeric(gold["expected_score"], errors="coerce")).abs()
        if err.isna().any():
            raise ValueError("gold rows need a numeric expected_score")
        frame = pd.DataFrame({"rater_id": gold["rater_id"].to_numpy(), "err": err.to_numpy()})
        frame["exact"] = frame["err"] == 0
        frame["within1"] = frame["err"] <= 1
        out = frame.groupby("rater_id").agg(
            n_gold=("err", "size"),
            gold_exact=("exact", "mean"),
            gold_within1=("within1", "mean"),
            gold_mae=("err", "mean"),
        )
    return _per_rater(out, _rater_index(ratings), "n_gold")


def retest_pairs(ratings: pd.DataFrame) -> pd.DataFrame:
    """Pairs of (first, second) presentations: each repeat row matched to its rater's test row.

    Returns
    -------
    pandas.DataFrame
        ``rater_id, dataset, image, method, first, second``. Repeat rows without a matching test row
        are left out.
    """
    keys = ["rater_id", *STIMULUS_KEY]
    repeat = kind_rows(ratings, "repeat")
    if repeat.empty:
        return pd.DataFrame(columns=[*keys, "first", "second"])
    first = test_rows(ratings).groupby(keys, as_index=False)["score"].mean().rename(columns={"score": "first"})
    second = repeat.groupby(keys, as_index=False)["score"].mean().rename(columns={"score": "second"})
    return first.merge(second, on=keys, how="inner")


def test_retest(ratings: pd.DataFrame) -> pd.DataFrame:
    """Per-rater test-retest reliability on repeated items.

    Returns
    -------
    pandas.DataFrame
        ``rater_id, n_repeat, retest_r, retest_mad, retest_shift``: the number of repeated items, the
        Pearson correlation between first and second presentation (NaN with fewer than 3 pairs or a
        constant side), the mean absolute difference and the mean of ``second - first``.
    """
    pairs = retest_pairs(ratings)
    if pairs.empty:
        cols = ["n_repeat", "retest_r", "retest_mad", "retest_shift"]
        return _per_rater(pd.DataFrame(np.nan, index=pd.Index([], name="rater_id"), columns=cols),
                          _rater_index(ratings), "n_repeat")
    diff = pairs["second"] - pairs["first"]
    pairs = pairs.assign(diff=diff, abs_diff=diff.abs())
    grouped = pairs.groupby("rater_id", sort=True)
    out = pd.DataFrame(
        {
            "n_repeat": grouped.size(),
            "retest_r": _pearson_by(pairs["rater_id"], pairs["first"], pairs["second"]),
            "retest_mad": grouped["abs_diff"].mean(),
            "retest_shift": grouped["diff"].mean(),
        }
    )
    out.loc[out["n_repeat"] < 3, "retest_r"] = np.nan
    return _per_rater(out, _rater_index(ratings), "n_repeat")


def _icc_a1(x: np.ndarray, y: np.ndarray) -> float:
    """ICC(A,1) of McGraw & Wong (1996): two-way random effects, absolute agreement, single measure."""
    data = np.column_stack([x, y])
    n, k = data.shape
    grand = data.mean()
    ms_rows = k * ((data.mean(axis=1) - grand) ** 2).sum() / (n - 1)
    ms_cols = n * ((data.mean(axis=0) - grand) ** 2).sum() / (k - 1)
    resid = data - data.mean(axis=1, keepdims=True) - data.mean(axis=0, keepdims=True) + grand
    ms_err = (resid**2).sum() / ((n - 1) * (k - 1))
    denom = ms_rows + (k - 1) * ms_err + k * (ms_cols - ms_err) / n
    return float((ms_rows - ms_err) / denom) if denom > 0 else float("nan")


def test_retest_summary(ratings: pd.DataFrame, confidence: float = 0.95) -> dict:
    """Study-level test-retest reliability, as in the paper's pilot study.

    Returns
    -------
    dict
        ``n_pairs``, ``n_raters``; ``pearson_r`` with a Fisher-z ``pearson_ci_low``/``high``;
        ``icc_a1`` (two-way random effects, absolute agreement, single measure, with the two
        presentations as the two "raters" and each (rater, stimulus) as a target); ``mean_abs_diff``;
        ``mean_shift`` (second - first); and the paired two-sided Wilcoxon signed-rank test of a
        systematic shift between presentations (``scipy.stats.wilcoxon`` defaults):
        ``wilcoxon_statistic``, ``wilcoxon_p``. All NaN (``n_pairs = 0``) without repeats; the
        Wilcoxon p-value is 1 when every pair agrees exactly.

    References
    ----------
    1. McGraw, K. O., Wong, S. P. (1996). Forming inferences about some intraclass correlation
       coefficients. Psychological Methods 1(1), 30-46.
    2. Shrout, P. E., Fleiss, J. L. (1979). Intraclass correlations: uses in assessing rater
       reliability. Psychological Bulletin 86(2), 420-428 (ICC(2,1)).
    3. Ledig, C. et al. (2017), supplement (test-retest pilot).
    """
    pairs = retest_pairs(ratings)
    nan = float("nan")
    out = {
        "n_pairs": int(len(pairs)), "n_raters": int(pairs["rater_id"].nunique()) if len(pairs) else 0,
        "pearson_r": nan, "pearson_ci_low": nan, "pearson_ci_high": nan, "icc_a1": nan,
        "mean_abs_diff": nan, "mean_shift": nan, "wilcoxon_statistic": nan, "wilcoxon_p": nan,
    }  # fmt: skip
    if pairs.empty:
        return out
    x = pairs["first"].to_numpy(dtype=float)
    y = pairs["second"].to_numpy(dtype=float)
    out["mean_abs_diff"] = float(np.abs(y - x).mean())
    out["mean_shift"] = float((y - x).mean())
    if len(pairs) >= 3 and x.std() > 0 and y.std() > 0:
        r = float(np.corrcoef(x, y)[0, 1])
        out["pearson_r"] = r
        if len(pairs) > 3 and abs(r) < 1:
            z = np.arctanh(r)
            half = sps.norm.ppf(0.5 + confidence / 2.0) / np.sqrt(len(pairs) - 3)
            out["pearson_ci_low"], out["pearson_ci_high"] = float(np.tanh(z - half)), float(np.tanh(z + half))
    if len(pairs) >= 2:
        out["icc_a1"] = _icc_a1(x, y)
    if np.all(x == y):
        out["wilcoxon_statistic"], out["wilcoxon_p"] = 0.0, 1.0
    else:
        res = sps.wilcoxon(x, y)
        out["wilcoxon_statistic"], out["wilcoxon_p"] = float(res.statistic), float(res.pvalue)
    return out


# --------------------------------------------------------------------------------------------
# Maximum-likelihood subject model (ITU-T P.910 Annex E, SUREAL MLE_CO)
# --------------------------------------------------------------------------------------------

#: Standard deviation of the rounding error of an integer score, ``1 / sqrt(12)``: the floor of a
#: rater's inconsistency. A 1..5 score cannot be more consistent with a continuous quality than its
#: own rounding; an estimate below it means ``psi`` has been fitted to that rater's scores.
ROUNDING_SD = 1.0 / np.sqrt(12.0)

#: Raters with fewer test ratings are left out of the rater model: their bias and inconsistency
#: rest on too few residuals (``se(upsilon) / upsilon = 1 / sqrt(2 df)``, 22% at 10 ratings) and a
#: rater with one rating can be fitted exactly, which lets the likelihood grow without bound.
MIN_MLE_RATINGS = 10


@dataclass(frozen=True)
class MLEResult:
    """Result of :func:`mle_scores`.

    Attributes
    ----------
    quality : pandas.DataFrame
        ``dataset, image, method, n, psi, psi_se, psi_ci_low, psi_ci_high``: recovered quality of
        each stimulus (``n`` modelled ratings) with its standard error and confidence interval.
    raters : pandas.DataFrame
        ``rater_id, n, modelled, bias, bias_se, inconsistency, inconsistency_se, at_bound,
        mle_note``; every rater, those left out with NaN estimates and the reason in ``mle_note``.
    n_iter : int
        Iterations used.
    converged : bool
        Whether the iteration settled at an interior maximum: False when it hit ``max_iter``, when
        an inconsistency sits at its lower bound, or when the model could not be fitted (fewer
        than two modelled raters, or groups of raters and stimuli sharing no rating); then every
        standard error is NaN and ``warning`` says why.
    log_likelihood : float
        Log-likelihood of the modelled ratings at the estimate.
    warning : str
        Why the estimate should not be trusted, in words ("" when nothing is wrong).
    """

    quality: pd.DataFrame = field(repr=False)
    raters: pd.DataFrame = field(repr=False)
    n_iter: int
    converged: bool
    log_likelihood: float
    warning: str = ""


def _incidence(r_codes: np.ndarray, s_codes: np.ndarray, n_r: int, n_s: int) -> sparse.csr_matrix:
    """Ratings per (stimulus, rater), shape (S, R), sparse: a crowd study's raters see few stimuli."""
    return sparse.csr_matrix((np.ones(len(r_codes)), (s_codes, r_codes)), shape=(n_s, n_r))


#: (query, rater) terms summed at a time by ``_cross_at``: bounds its memory to some 100 MB.
_PAIRS_AT_ONCE = 4_000_000
#: Above this share of rated (stimulus, rater) cells, ``_cross_at`` multiplies dense blocks (BLAS)
#: instead of summing over each stimulus' raters: the same numbers, faster for a lab study's
#: complete design, while a crowd study's sparse one would not fit as dense rows.
_DENSE_SHARE = 0.05
#: From this many raters the Schur complement is inverted by Cholesky in place (SciPy's LAPACK)
#: rather than by NumPy's LU ``inv``. Below it the flops are few and the in-place call costs more
#: than it saves: each call wakes SciPy's OpenBLAS threads, and on a loaded 2-core box its
#: fine-grained threaded potrf/potri took 1 s a call at 1000 raters where ``inv`` took 0.3 s (at
#: 10^4 raters: 124 s and +0.8 GB against 313 s and +3.8 GB).
_CHOLESKY_RATERS = 3000
#: While a refresh of the rater model's residual degrees of freedom moves them by more than this,
#: the next one inverts in float32: its error on them, about 1e-6 at 10^4 raters (measured against
#: float64), is then a thousandth of the step and only changes the path of the iteration, never its
#: end (convergence is declared from float64 refreshes only). At 10^6 ratings the refreshes move
#: the df by 7e-2, 3e-4 and 2e-6: two of the three inversions run at half the cost.
_SINGLE_PRECISION_MOVE = 1e-3
#: The largest ratio between the df moves of successive refreshes from which the rater model
#: trusts their geometric decay to bound what a further refresh could move (measured: ~5e-3).
_CONTRACTION = 0.1
#: Rows of ``cov(Delta)`` mirrored at a time after the in-place Cholesky inverse (which fills one
#: triangle): the copy's temporary stays a few MB at 10^4 raters.
_MIRROR_ROWS = 1024


def _cross_at(b_over_a: sparse.csr_matrix, cov_delta: np.ndarray, at_s: np.ndarray, at_r: np.ndarray) -> np.ndarray:
    """``cov(psi_j, Delta_r) = -sum_k (B/A)_jk cov(Delta)_kr`` at the pairs ``(at_s, at_r)``: a sum
    over the raters of stimulus ``j`` only, so the cost is the pairs times the raters per stimulus
    (or, for a nearly complete design, dense blocks of ``-(B/A) cov(Delta)``)."""
    n_s, n_r = b_over_a.shape
    out = np.empty(len(at_s))
    if b_over_a.nnz > _DENSE_SHARE * n_s * n_r:
        order = np.argsort(at_s, kind="stable")
        step = max(1, _PAIRS_AT_ONCE // max(n_r, 1))
        for start in range(0, n_s, step):
            block = -(b_over_a[start:start + step].toarray() @ cov_delta)
            lo, hi = np.searchsorted(at_s[order], [start, start + step])
            sel = order[lo:hi]
            out[sel] = block[at_s[sel] - start, at_r[sel]]
        return out
    indptr, indices, data = b_over_a.indptr, b_over_a.indices, b_over_a.data
    lens = np.diff(indptr)[at_s]
    ends = np.cumsum(lens)
    start = 0
    while start < len(at_s):
        done = int(ends[start - 1]) if start else 0
        stop = max(start + 1, int(np.searchsorted(ends, done + _PAIRS_AT_ONCE, side="right")))
        n = lens[start:stop]
        query = np.repeat(np.arange(stop - start), n)
        k = indptr[at_s[start:stop]][query] + np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
        terms = data[k] * cov_delta[indices[k], at_r[start:stop][query]]
        out[start:stop] = -np.bincount(query, weights=terms, minlength=stop - start)
        start = stop
    return out


def _schur_pinv(b: sparse.csr_matrix, b_over_a: sparse.csr_matrix, single: bool = False,
                ) -> tuple[np.ndarray, np.ndarray]:
    """``cov(Delta)``, the pseudo-inverse of the Schur complement ``D - B^T A^-1 B`` (dense, R x R),
    and the diagonal of ``cov(Delta) (D - B^T A^-1 B)`` (``1 - 1/R`` on a connected design).

    ``(S + c u u^T)^-1 = S^+ + u u^T / c`` for the unit null vector ``u = 1 / sqrt(R)``: an exact
    pseudo-inverse that stays positive semi-definite where pinv's cut-off of the null eigenvalue
    (about 1e-13, of either sign) is not. ``S + c u u^T`` is positive definite on a connected
    design; from :data:`_CHOLESKY_RATERS` raters on it is inverted by Cholesky in place (LAPACK
    potrf + potri: R^3 flops, half of an LU inverse's, and one R x R array instead of four), in
    float32 when ``single`` (half the time and memory, about 1e-6 relative error; see
    :func:`_fit_rater_model` for where that is enough).
    """
    n_r = b.shape[1]

    def schur(dtype=np.float64) -> np.ndarray:
        out = (b.T @ b_over_a).astype(dtype).toarray(order="C")  # C order: its transpose is what LAPACK overwrites
        np.negative(out, out=out)
        out[np.diag_indices(n_r)] += np.asarray(b.sum(axis=0)).ravel()
        return out

    single = single and n_r >= _CHOLESKY_RATERS
    matrix = schur(np.float32 if single else np.float64)
    c = float(np.trace(matrix, dtype=np.float64)) / n_r
    matrix += c / n_r
    if n_r < _CHOLESKY_RATERS:
        try:
            cov_delta = np.linalg.inv(matrix) - 1.0 / (c * n_r)
            return (cov_delta + cov_delta.T) / 2.0, np.full(n_r, 1.0 - 1.0 / n_r)
        except np.linalg.LinAlgError:
            info = 1
    else:
        # ``matrix`` is symmetric: its transpose is the Fortran-ordered array LAPACK overwrites in place.
        potrf, potri = (lapack.spotrf, lapack.spotri) if single else (lapack.dpotrf, lapack.dpotri)
        factor, info = potrf(matrix.T, lower=1, overwrite_a=1, clean=0)
        if info == 0:
            inverse, info = potri(factor, lower=1, overwrite_c=1)
    if info != 0:  # disconnected design: more than the common shift is free
        matrix = schur()
        cov_delta = np.linalg.pinv(matrix, hermitian=True)
        cov_delta = (cov_delta + cov_delta.T) / 2.0
        return cov_delta, np.einsum("ij,ji->i", cov_delta, matrix)
    cov_delta = inverse.T  # C-ordered again; its upper triangle holds the inverse
    for start in range(0, n_r, _MIRROR_ROWS):  # mirror the upper triangle into the lower, by blocks
        stop = min(start + _MIRROR_ROWS, n_r)
        cov_delta[start:stop, :start] = cov_delta[:start, start:stop].T
        block = cov_delta[start:stop, start:stop]
        block[np.tril_indices(stop - start, -1)] = block.T[np.tril_indices(stop - start, -1)]
    cov_delta -= 1.0 / (c * n_r)
    return cov_delta, np.full(n_r, 1.0 - 1.0 / n_r)


def _quadratic_forms(rows: sparse.csr_matrix, matrix: np.ndarray) -> np.ndarray:
    """``rows_j matrix rows_j^T`` for every row ``j`` of a sparse matrix: a sum over the pairs of
    each row's entries (a crowd study's stimulus has a few raters), or, for a nearly complete design,
    dense blocks of ``rows matrix`` (BLAS)."""
    n_s, n_r = rows.shape
    out = np.empty(n_s)
    if rows.nnz > _DENSE_SHARE * n_s * n_r:
        step = max(1, _PAIRS_AT_ONCE // max(n_r, 1))
        for start in range(0, n_s, step):
            block = rows[start:start + step].toarray()
            out[start:start + step] = np.einsum("ij,ij->i", block @ matrix, block)
        return out
    indptr, indices, data = rows.indptr, rows.indices, rows.data
    lens = np.diff(indptr)
    ends = np.cumsum(lens**2)
    at_once = _PAIRS_AT_ONCE // 4  # eight arrays over the pairs here, two in ``_cross_at``
    start = 0
    while start < n_s:
        done = int(ends[start - 1]) if start else 0
        stop = max(start + 1, int(np.searchsorted(ends, done + at_once, side="right")))
        n, pairs = lens[start:stop], lens[start:stop] ** 2
        row = np.repeat(np.arange(stop - start), pairs)
        p = np.arange(int(pairs.sum())) - np.repeat(np.cumsum(pairs) - pairs, pairs)
        first = indptr[start:stop][row]
        ka, kb = first + p // n[row], first + p % n[row]
        terms = data[ka] * data[kb] * matrix[indices[ka], indices[kb]]
        out[start:stop] = np.bincount(row, weights=terms, minlength=stop - start)
        start = stop
    return out


@dataclass(frozen=True)
class _Covariance:
    """What the rater model needs from the inverse Fisher information of ``(psi, Delta)``."""

    var_psi: np.ndarray  # (S,)
    cov_delta: np.ndarray  # (R, R)
    shift_diag: np.ndarray  # diag(cov(Delta) (D - B^T A^-1 B)), (R,)
    b_over_a: sparse.csr_matrix


def _covariance(nij, w: np.ndarray, single: bool = False) -> _Covariance:
    """Inverse Fisher information of ``(psi, Delta)`` given the weights, under ``sum(Delta) = 0``.

    The information is ``[[A, B], [B^T, D]]`` with ``A = diag(sum_i w_i n_ij)``, ``B_ji = w_i n_ij``
    and ``D = diag(w_i n_i)``; its Schur complement ``D - B^T A^-1 B`` is singular along the common
    shift of ``psi`` and ``Delta``, and its pseudo-inverse is the covariance of the centred biases
    (:func:`_schur_pinv`). ``var(psi_j) = 1 / A_j + (B/A)_j cov(Delta) (B/A)_j^T`` needs
    ``cov(Delta)`` only at the pairs of raters of one stimulus (:func:`_quadratic_forms`), so memory
    grows with the ratings and R^2, not with stimuli x raters; the R x R inverse (R^3) remains.
    """
    b = sparse.csr_matrix(sparse.csr_matrix(nij).multiply(w[None, :]))
    a = np.asarray(b.sum(axis=1)).ravel()
    b_over_a = sparse.csr_matrix(b.multiply(1.0 / a[:, None]))
    b_over_a.sort_indices()
    cov_delta, shift_diag = _schur_pinv(b, b_over_a, single)
    var_psi = 1.0 / a + _quadratic_forms(b_over_a, cov_delta)
    return _Covariance(var_psi, cov_delta, shift_diag, b_over_a)


def _rater_model_covariance(nij, w: np.ndarray, cross_at: tuple[np.ndarray, np.ndarray] | None = None,
                            ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``var(psi)`` (S), ``cov(Delta)`` (R, R) and ``cov(psi, Delta)`` at the (stimulus, rater)
    code pairs ``cross_at`` (None without them) of :func:`_covariance`."""
    cov = _covariance(nij, w)
    cross = None if cross_at is None else _cross_at(cov.b_over_a, cov.cov_delta, *cross_at)
    return cov.var_psi, cov.cov_delta, cross


def _residual_df(nij, w, r_codes, s_codes, n_r) -> np.ndarray:
    """Each rater's residual degrees of freedom, ``n_i - sum_j h_ij`` (``h`` the leverages), at the
    weights ``w`` (see :func:`_residual_df_of`)."""
    return _residual_df_of(_covariance(nij, w), w, r_codes, s_codes, n_r)


def _residual_df_of(cov: _Covariance, w, r_codes, s_codes, n_r) -> np.ndarray:
    """``n_i - sum_j h_ij`` from the covariance at the weights ``w``.

    ``h_ij = w_i (var(psi_j) + var(Delta_i) + 2 cov(psi_j, Delta_i))``; summed over the rater's
    ratings the cross terms are ``-[cov(Delta) K]_ii`` with ``K = (D - Schur) / w_i``, so
    ``sum_j h_ij = w_i (sum_j n_ij var(psi_j) - n_i var(Delta_i)) + 2 [cov(Delta) Schur]_ii``: no
    covariance of a (stimulus, rater) pair is formed.
    """
    count_r = np.bincount(r_codes, minlength=n_r).astype(float)
    per_rater = np.bincount(r_codes, weights=cov.var_psi[s_codes], minlength=n_r)
    leverage = w * (per_rater - count_r * np.diag(cov.cov_delta)) + 2.0 * cov.shift_diag
    return count_r - leverage


def _components(r_codes: np.ndarray, s_codes: np.ndarray, n_r: int, n_s: int) -> int:
    """Connected components of the rater-stimulus graph: more than one leaves ``psi`` unidentified."""
    graph = sparse.coo_matrix((np.ones(len(r_codes)), (r_codes, n_r + s_codes)), shape=(n_r + n_s,) * 2)
    return int(csgraph.connected_components(graph, directed=False)[0])


def _psi_update(u, s_codes, n_s, bias_of_rating=0.0, weight_of_rating=1.0) -> np.ndarray:
    """The Annex E update of ``psi``: per stimulus, the mean of ``u - Delta_i`` weighted by
    ``1 / upsilon_i^2`` (arrays per rating); with no bias and equal weights it is the raw MOS."""
    weight = np.broadcast_to(weight_of_rating, u.shape)
    total = np.bincount(s_codes, weights=weight * (u - bias_of_rating), minlength=n_s)
    return total / np.bincount(s_codes, weights=weight, minlength=n_s)


def _fit_rater_model(u, r_codes, s_codes, n_r, n_s, *, min_inconsistency, tol, max_iter, residual_df):
    """Alternating block updates of P.910 Annex E; see :func:`mle_scores`.

    The residual degrees of freedom cost an R x R inversion (:func:`_covariance`), the updates
    themselves a pass over the ratings; so the updates run with the degrees of freedom held, and
    these are recomputed at the weights reached each time ``psi`` settles. The fit has converged
    when an iteration that starts from freshly computed degrees of freedom moves no ``psi`` by
    ``tol``, or when the refreshes contract so fast that a further one could not move psi by
    ``tol`` (:func:`last_needed`, which spares that last inversion): the fixed point of
    recomputing them every iteration, reached with a few inversions instead of one per iteration
    (26 at 10^6 ratings). While a refresh still moves the held
    degrees of freedom by more than :data:`_SINGLE_PRECISION_MOVE` the next one inverts in float32
    (half the time); convergence is only ever declared from a float64 one. Returns the covariance
    of that last computation too (None without ``residual_df``): its weights are within one
    settled iteration of the final ones, and the standard errors use it rather than invert again.
    """
    count_r = np.bincount(r_codes, minlength=n_r).astype(float)
    nij = _incidence(r_codes, s_codes, n_r, n_s) if residual_df else None
    psi = _psi_update(u, s_codes, n_s)
    w = np.ones(n_r)
    converged, it, cov = False, 0, None

    def own_leverage(w):  # sum_j w_i n_ij / A_j: the part of rater i's leverage its own weight moves
        a = np.bincount(s_codes, weights=w[r_codes], minlength=n_s)
        return w * np.bincount(r_codes, weights=1.0 / a[s_codes], minlength=n_r)

    def fresh_df(w):  # (df, exact): float32 while the refreshes still move the held df far
        nonlocal cov, at_refresh, moved
        cov = None  # let the previous R x R covariance go before the next one is made
        cov = _covariance(nij, w, single=moved > _SINGLE_PRECISION_MOVE)
        df = _residual_df_of(cov, w, r_codes, s_codes, n_r)
        held = df + own_leverage(w)  # the held part: all but the own-weight leverage
        moved, at_refresh = float(np.max(np.abs(held - at_refresh))), held
        refreshes.append((moved, psi.copy()))
        return df, cov.cov_delta.dtype == np.float64  # _schur_pinv decides where float32 applies

    def last_needed() -> bool:
        """Whether the refresh just made leaves less than ``tol`` for any later one to move psi.

        Each refresh moves the held df by a near-constant fraction ``r`` of the one before (about
        5e-3 at 10^6 ratings), and psi's response with it. With that fraction below
        :data:`_CONTRACTION` twice running, what the skipped refreshes would still move psi is at
        most ``r^2 D / (1 - r)``, ``D`` how far psi moved between the two refreshes before.
        """
        if len(refreshes) < 3:
            return False
        (m0, _), (m1, p1), (m2, p2) = refreshes[-3:]
        r1, r2 = m1 / max(m0, 1e-300), m2 / max(m1, 1e-300)
        return max(r1, r2) < _CONTRACTION and r2**2 * float(np.max(np.abs(p2 - p1))) / (1.0 - r2) < tol

    def blocks(psi, df):
        bias = np.bincount(r_codes, weights=u - psi[s_codes], minlength=n_r) / count_r
        shift = bias.mean()
        bias, psi = bias - shift, psi + shift
        resid = u - psi[s_codes] - bias[r_codes]
        rss = np.bincount(r_codes, weights=resid**2, minlength=n_r)
        with np.errstate(invalid="ignore", divide="ignore"):
            ups = np.sqrt(rss / np.maximum(df, 1e-12))
        return psi, bias, resid, np.maximum(np.nan_to_num(ups), min_inconsistency)

    # Until the first inversion, each rater's bias is taken to cost it one degree of freedom.
    at_refresh, moved, refreshes = count_r - 1.0, np.inf, []
    df = at_refresh - own_leverage(w) if residual_df else count_r
    df_is_fresh = not residual_df  # computed exactly at the weights the next iteration starts from
    settled = False  # the last float64 refresh left nothing for a later one to move (last_needed)
    for it in range(1, max_iter + 1):
        psi, bias, resid, ups = blocks(psi, df)
        w = 1.0 / ups**2
        new_psi = _psi_update(u, s_codes, n_s, bias[r_codes], w[r_codes])
        change = np.max(np.abs(new_psi - psi))
        psi = new_psi
        if change < tol:
            if df_is_fresh or settled:
                converged = True
                break
            df, df_is_fresh = fresh_df(w)
            settled = df_is_fresh and last_needed()
        elif residual_df:
            df, df_is_fresh = at_refresh - own_leverage(w), False
    # Final consistent block updates for the reported Delta and upsilon.
    psi, bias, resid, ups = blocks(psi, df)
    return psi, bias, resid, ups, df, it, converged, cov


def mle_scores(
    ratings: pd.DataFrame,
    confidence: float = 0.95,
    tol: float = 1e-8,
    max_iter: int = 10_000,
    min_inconsistency: float = ROUNDING_SD,
    *,
    min_ratings: int = MIN_MLE_RATINGS,
    residual_df: bool = True,
    se: str = "full",
) -> MLEResult:
    """Quality scores, rater biases and inconsistencies of the P.910 Annex E rater model (MLE_CO).

    Parameters
    ----------
    ratings : pandas.DataFrame
        Long ratings frame; test rows are used. The design may be incomplete.
    confidence : float
        Level of the interval ``psi_j +- t_{n_j - 1} psi_se_j``, ``n_j`` the modelled ratings of
        the stimulus (the Student quantile allows for the estimated inconsistencies).
    tol : float
        Convergence threshold on the largest change of any ``psi`` between iterations.
    max_iter : int
        Iteration limit.
    min_inconsistency : float
        Lower bound of ``upsilon``, by default :data:`ROUNDING_SD`: without one the likelihood
        has no maximum (``psi`` copies one rater whose ``upsilon`` goes to zero).
    min_ratings : int
        Raters with fewer test ratings are left out of the model and listed (``modelled`` False).
    residual_df : bool
        Estimate ``upsilon_i^2`` as the rater's residual sum of squares over its residual degrees
        of freedom ``n_i - sum_j h_ij`` (``h`` the leverages of the weighted fit, as in REML)
        instead of over ``n_i`` (the MLE, which on sparse designs shrinks ``upsilon`` and with it
        every standard error).
    se : {"full", "diagonal"}
        "full": standard errors from the inverse of the whole Fisher information of ``(psi,
        Delta)``, which carries the uncertainty of the biases into ``psi`` when raters see
        different stimuli; "diagonal": the inverse of its diagonal, as SUREAL reports.

    Returns
    -------
    MLEResult

    Notes
    -----
    Model (Li & Bampis 2017; ITU-T P.910 (2022) Annex E without the content-ambiguity term, the
    "MLE_CO" model of Netflix SUREAL): the score of rater ``i`` on stimulus ``j`` is
    ``U_ij = psi_j + Delta_i + upsilon_i X``, ``X ~ N(0, 1)``. The alternating updates of Annex E
    (``Delta``, then ``upsilon``, then the weighted mean ``psi``) start from the raw MOS and stop
    when no ``psi_j`` moves by more than ``tol``; the biases are centred to mean zero over the
    modelled raters, so ``psi`` is the latent quality on the scale of those raters' mean.

    The plain MLE is ill-posed: the likelihood grows without bound as one ``upsilon_i`` goes to
    zero. Three changes, chosen on simulated sparse designs (``benchmarks/rater_model.py``,
    BENCHMARKS.md), make the estimate honest: raters with fewer than ``min_ratings`` ratings are
    left out, ``upsilon`` is bounded below by the rounding spread of an integer score and
    estimated on residual degrees of freedom, and the standard errors use the full information.
    With these the reported ``psi_se`` matches the spread of ``psi`` across simulations, and the
    Student-t intervals cover the latent quality at close to the nominal rate (normal ones, with
    the inconsistencies taken as known, under-cover by a few points). When an ``upsilon`` still
    sits at its bound the estimate is a boundary point, not a maximum: ``converged`` is False,
    every standard error is NaN and ``warning`` says which raters.

    References
    ----------
    1. ITU-T P.910 (10/2022), Annex E.
    2. Li, Z., Bampis, C. G. (2017). Recover subjective quality scores from noisy measurements.
       Data Compression Conference, 52-61.
    3. Patterson, H. D., Thompson, R. (1971). Recovery of inter-block information when block sizes
       are unequal. Biometrika 58(3), 545-554 (residual degrees of freedom, REML).
    4. Sheppard, W. F. (1898). On the calculation of the most probable values of frequency
       constants, for data arranged according to equidistant divisions of a scale. Proceedings of
       the London Mathematical Society 29, 353-380 (the 1/12 variance of rounding).
    """
    if se not in ("full", "diagonal"):
        raise ValueError("se must be 'full' or 'diagonal'")
    if not min_inconsistency > 0:
        raise ValueError("min_inconsistency must be positive")
    data = test_rows(ratings)
    keys = list(STIMULUS_KEY)
    all_raters = _rater_index(data)
    n_all = data.groupby("rater_id").size().reindex(all_raters).to_numpy()
    few = n_all < min_ratings
    data_all = data
    data = data.loc[~data["rater_id"].isin(all_raters[few])]
    r_codes, raters = pd.factorize(data["rater_id"], sort=True)
    s_codes = data.groupby(keys, sort=True).ngroup().to_numpy()
    n_r, n_s = len(raters), int(s_codes.max()) + 1 if len(data) else 0
    u = data["score"].to_numpy(dtype=float)
    groups = _components(r_codes, s_codes, n_r, n_s) if n_r >= 2 else 1
    if n_r >= 2 and groups == 1:
        psi, bias, resid, ups, df, it, converged, cov = _fit_rater_model(
            u, r_codes, s_codes, n_r, n_s, min_inconsistency=min_inconsistency, tol=tol, max_iter=max_iter,
            residual_df=residual_df,
        )  # fmt: skip
        w = 1.0 / ups**2
        count_r = np.bincount(r_codes, minlength=n_r).astype(float)
        if se == "full":
            if cov is None:
                cov = _covariance(_incidence(r_codes, s_codes, n_r, n_s), w)
            var_psi, cov_delta = cov.var_psi, cov.cov_delta
            with np.errstate(invalid="ignore"):  # NaN where a disconnected design leaves them undefined
                psi_se, bias_se = np.sqrt(var_psi), np.sqrt(np.diag(cov_delta))
        else:
            psi_se = 1.0 / np.sqrt(np.bincount(s_codes, weights=w[r_codes], minlength=n_s))
            bias_se = ups / np.sqrt(count_r)
        ups_se = ups / np.sqrt(2.0 * np.maximum(df, 1e-12))
        loglik = float(np.sum(-np.log(ups[r_codes]) - resid**2 * w[r_codes] / 2.0 - 0.5 * np.log(2 * np.pi)))
        at_bound = ups <= min_inconsistency * (1.0 + 1e-9)
    else:  # fewer than two modelled raters, or no common scale: nothing to separate bias from quality
        psi = _psi_update(u, s_codes, n_s)
        bias = ups = psi_se = bias_se = ups_se = np.full(n_r, np.nan)
        psi_se = np.full(n_s, np.nan)
        it, converged, loglik, at_bound = 0, False, float("nan"), np.zeros(n_r, bool)
    warning = ""
    if groups > 1:
        warning = (f"raters and stimuli fall into {groups} groups that share no rating: their quality scales "
                   "are not comparable and the rater model is not fitted")
    elif at_bound.any():
        converged = False
        names = ", ".join(map(str, np.asarray(raters)[at_bound]))
        warning = (f"inconsistency of {names} at the lower bound {min_inconsistency:.3f}: the model fits their "
                   "scores exactly, the estimate is a boundary point and no standard error is given")
    elif n_r < 2:
        warning = "fewer than two raters with enough ratings: the rater model cannot be fitted"
    if not converged:
        psi_se, bias_se, ups_se = (np.full_like(np.asarray(a, float), np.nan) for a in (psi_se, bias_se, ups_se))

    stim = data_all[keys].drop_duplicates().sort_values(keys).reset_index(drop=True)
    n_s_obs = np.bincount(s_codes, minlength=n_s)
    with np.errstate(invalid="ignore"):
        half = sps.t.ppf(0.5 + confidence / 2.0, np.where(n_s_obs > 1, n_s_obs - 1, np.nan)) * psi_se
    fitted = data[keys].assign(_code=s_codes).drop_duplicates("_code").sort_values("_code")[keys]
    fitted = fitted.reset_index(drop=True).assign(
        n=n_s_obs, psi=psi, psi_se=psi_se, psi_ci_low=psi - half, psi_ci_high=psi + half,
    )  # fmt: skip
    quality = stim.merge(fitted, on=keys, how="left")
    quality["n"] = quality["n"].fillna(0).astype(int)

    est = pd.DataFrame(
        {"bias": bias, "bias_se": bias_se, "inconsistency": ups, "inconsistency_se": ups_se, "at_bound": at_bound},
        index=pd.Index(np.asarray(raters), name="rater_id"),
    )
    rater_frame = est.reindex(all_raters)
    rater_frame.insert(0, "modelled", ~few)
    rater_frame.insert(0, "n", n_all.astype(int))
    rater_frame["at_bound"] = rater_frame["at_bound"].fillna(False).astype(bool)
    notes = np.where(few, f"left out of the rater model: fewer than {min_ratings} test ratings", "")
    notes = np.where(rater_frame["at_bound"], f"inconsistency at the lower bound {min_inconsistency:.3f}: "
                     "not identified, standard errors not given", notes)  # fmt: skip
    rater_frame["mle_note"] = notes
    return MLEResult(quality=quality, raters=rater_frame.reset_index(), n_iter=it, converged=converged,
                     log_likelihood=loglik, warning=warning)  # fmt: skip


# --------------------------------------------------------------------------------------------
# Krippendorff's alpha
# --------------------------------------------------------------------------------------------


def krippendorff_alpha(ratings: pd.DataFrame, level: str = "interval") -> float:
    """Krippendorff's alpha of the study, units = stimuli, coders = raters, values = scores.

    Parameters
    ----------
    ratings : pandas.DataFrame
        Long ratings frame; test rows, one value per (rater, stimulus).
    level : {"interval", "ordinal"}
        Metric: interval ``delta^2 = (c - k)^2``; ordinal
        ``delta^2_ck = (sum_{g=c}^{k} n_g - (n_c + n_k) / 2)^2`` with ``n_g`` the number of pairable
        values equal to ``g``.

    Returns
    -------
    float
        ``alpha = 1 - (n - 1) sum_ck o_ck delta^2_ck / sum_ck n_c n_k delta^2_ck`` from the coincidence
        matrix ``o_ck = sum_u (number of c-k pairs in unit u) / (m_u - 1)`` over units with
        ``m_u >= 2`` values. NaN when there is no pairable unit or no variation at all.

    References
    ----------
    1. Krippendorff, K. (2011). Computing Krippendorff's alpha-reliability. University of
       Pennsylvania, Annenberg School for Communication, Departmental Papers 43.
    2. Hayes, A. F., Krippendorff, K. (2007). Answering the call for a standard reliability measure
       for coding data. Communication Methods and Measures 1(1), 77-89.
    """
    if level not in ("interval", "ordinal"):
        raise ValueError("level must be 'interval' or 'ordinal'")
    data = _cells(ratings)
    codes, n_units = _stimulus_codes(data)
    value_codes, values = pd.factorize(data["score"], sort=True)
    values = np.asarray(values, dtype=float)
    n_v = len(values)
    counts = np.zeros((n_units, n_v))
    np.add.at(counts, (codes, value_codes), 1.0)
    m = counts.sum(axis=1)
    counts = counts[m >= 2]
    m = m[m >= 2]
    if counts.size == 0:
        return float("nan")
    scaled = counts / (m - 1.0)[:, None]
    coincidence = scaled.T @ counts - np.diag(scaled.sum(axis=0))
    n_c = coincidence.sum(axis=1)
    n = n_c.sum()
    if level == "interval":
        delta2 = (values[:, None] - values[None, :]) ** 2
    else:
        cum = np.cumsum(n_c)
        lo = np.minimum.outer(np.arange(n_v), np.arange(n_v))
        hi = np.maximum.outer(np.arange(n_v), np.arange(n_v))
        between = cum[hi] - np.where(lo > 0, cum[lo - 1], 0.0)  # sum_{g=lo}^{hi} n_g
        delta2 = (between - (n_c[:, None] + n_c[None, :]) / 2.0) ** 2
    observed = (coincidence * delta2).sum()
    expected = (np.outer(n_c, n_c) * delta2).sum()
    if expected == 0:
        return float("nan")
    return float(1.0 - (n - 1.0) * observed / expected)


# --------------------------------------------------------------------------------------------
# Per-rater report and study summary
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FlagRules:
    """The rules that flag a rater, and their wording: one home for both.

    :func:`rater_report` applies them and the report states them with :meth:`describe`, so the
    text a researcher reads is the rule that was applied. A threshold of None disables its rule; a
    statistic that is NaN never triggers a rule.

    Attributes
    ----------
    bt500 : bool
        Flag raters rejected by :func:`bt500_screening` (ITU-R BT.500-14 Annex 1 clause 2.3.1).
    min_loo_pearson : float or None
        Flag when the leave-one-out Pearson correlation (:func:`loo_correlations`) is below this.
    min_gold_within1 : float or None
        Flag when more of the rater's gold items than this share allows are scored more than one
        point from the expected score, always allowing one such miss: a single slip among a handful
        of gold items (4 of 5 = 80%... 3 of 4 = 75%) is what honest raters do, so with ``n`` gold
        items the rater is flagged at ``max(1, floor((1 - min_gold_within1) n)) + 1`` misses
        (:meth:`gold_misses_allowed`).
    max_retest_mad : float or None
        Flag when the mean absolute test-retest difference exceeds this (only raters with repeats).
    max_abs_bias : float or None
        Flag when the MLE bias ``|Delta_i|`` (:func:`mle_scores`) exceeds this many scale points.
    max_inconsistency : float or None
        Flag when the MLE inconsistency ``upsilon_i`` exceeds this.
    """

    bt500: bool = True
    min_loo_pearson: float | None = 0.5
    min_gold_within1: float | None = 0.8
    max_retest_mad: float | None = 1.0
    max_abs_bias: float | None = 1.0
    max_inconsistency: float | None = None

    def gold_misses_allowed(self, n_gold):
        """Gold items a rater may score more than one point off (:func:`analysis._frames.gold_misses_allowed`)."""
        return gold_misses_allowed(n_gold, self.min_gold_within1)

    def describe(self) -> list[str]:
        """One plain-text sentence per active rule, in the order :func:`rater_report` applies them."""
        rules = []
        if self.bt500:
            rules.append("rejected by the ITU-R BT.500-14 Annex 1 clause 2.3.1 screening "
                         f"((P+Q)/J > {BT500_MAX_OUTLIER_RATIO:g} and |P−Q|/(P+Q) < {BT500_MAX_BALANCE:g})")
        if self.min_loo_pearson is not None:
            rules.append(f"leave-one-out Pearson r with the other raters' mean below {self.min_loo_pearson}")
        if self.min_gold_within1 is not None:
            rules.append(f"more than {1 - self.min_gold_within1:.0%} (rounded down) and more than one of the "
                         "gold items scored more than one point from the expected score")
        if self.max_retest_mad is not None:
            rules.append(f"test-retest mean absolute difference above {self.max_retest_mad}")
        if self.max_abs_bias is not None:
            rules.append(f"maximum-likelihood bias (ITU-T P.910 Annex E) beyond ±{self.max_abs_bias}")
        if self.max_inconsistency is not None:
            rules.append(f"maximum-likelihood inconsistency above {self.max_inconsistency}")
        return rules


DEFAULT_RULES = FlagRules()


def rater_report(
    ratings: pd.DataFrame,
    rules: FlagRules = DEFAULT_RULES,
    *,
    mle: MLEResult | None = None,
) -> pd.DataFrame:
    """One row per rater with every screening statistic, a ``flagged`` column and the reasons.

    Parameters
    ----------
    ratings : pandas.DataFrame
        Long ratings frame (test, repeat and gold rows).
    rules : FlagRules
        The flagging rules and their thresholds (default :data:`DEFAULT_RULES`).
    mle : MLEResult, optional
        A precomputed :func:`mle_scores` result (saves recomputing it).

    Returns
    -------
    pandas.DataFrame
        ``rater_id, n_ratings, mean_score``, the ``bt500_*`` columns, ``n_shared, loo_pearson,
        loo_spearman``, ``n_gold, gold_exact, gold_within1, gold_mae``, ``n_repeat, retest_r,
        retest_mad, retest_shift``, ``mle_modelled, mle_bias, mle_bias_se, mle_inconsistency,
        mle_inconsistency_se, mle_at_bound, mle_note`` (whether the rater entered the
        :func:`mle_scores` model, and if not or if the fit is a boundary point, why),
        ``median_response_ms`` (when ``response_ms`` is present),
        ``flagged`` and ``flag_reasons`` (reasons joined by "; ", empty when not flagged).
    """
    data = test_rows(ratings)
    base = data.groupby("rater_id", sort=True)["score"].agg(n_ratings="size", mean_score="mean")
    out = _per_rater(base, _rater_index(ratings), "n_ratings").set_index("rater_id")
    for part in (bt500_screening(ratings), loo_correlations(ratings), gold_agreement(ratings), test_retest(ratings)):
        out = out.join(part.set_index("rater_id"))
    mle = mle if mle is not None else mle_scores(ratings)
    m = mle.raters.set_index("rater_id")[["modelled", "bias", "bias_se", "inconsistency", "inconsistency_se",
                                          "at_bound", "mle_note"]]  # fmt: skip
    out = out.join(m.rename(columns=lambda c: c if c.startswith("mle_") else f"mle_{c}"))
    if "response_ms" in ratings.columns:
        scored = ratings.loc[pd.to_numeric(ratings["score"]).notna()]  # a row without a score is no rating
        out = out.join(scored.groupby("rater_id")["response_ms"].median().rename("median_response_ms"))

    reasons: list[list[str]] = [[] for _ in range(len(out))]

    def rule(mask: pd.Series, text) -> None:
        for k in np.flatnonzero(mask.fillna(False).to_numpy(dtype=bool)):
            reasons[k].append(text(out.iloc[k]))

    if rules.bt500:
        rule(out["bt500_rejected"].astype("boolean"),
             lambda r: f"BT.500 rejected ((P+Q)/J={r.bt500_ratio:.3f} > {BT500_MAX_OUTLIER_RATIO:g}, "
                       f"|P-Q|/(P+Q)={r.bt500_balance:.2f} < {BT500_MAX_BALANCE:g})")
    if rules.min_loo_pearson is not None:
        rule(out["loo_pearson"] < rules.min_loo_pearson,
             lambda r: f"leave-one-out r={r.loo_pearson:.2f} < {rules.min_loo_pearson:g}")
    if rules.min_gold_within1 is not None:
        n_gold = out["n_gold"].fillna(0)
        misses = (n_gold * (1.0 - out["gold_within1"])).round()
        out["gold_misses"] = misses
        rule(misses > rules.gold_misses_allowed(n_gold),
             lambda r: f"gold: {r.gold_misses:.0f} of {r.n_gold:.0f} off by more than 1 point "
                       f"(at most {rules.gold_misses_allowed(r.n_gold)} allowed)")
    if rules.max_retest_mad is not None:
        rule(out["retest_mad"] > rules.max_retest_mad,
             lambda r: f"test-retest mean |diff| {r.retest_mad:.2f} > {rules.max_retest_mad:g}")
    if rules.max_abs_bias is not None:
        rule(out["mle_bias"].abs() > rules.max_abs_bias,
             lambda r: f"MLE bias {r.mle_bias:+.2f} beyond ±{rules.max_abs_bias:g}")
    if rules.max_inconsistency is not None:
        rule(out["mle_inconsistency"] > rules.max_inconsistency,
             lambda r: f"MLE inconsistency {r.mle_inconsistency:.2f} > {rules.max_inconsistency:g}")
    out["flagged"] = [bool(r) for r in reasons]
    out["flag_reasons"] = ["; ".join(r) for r in reasons]
    return out.reset_index()


def reliability_summary(
    ratings: pd.DataFrame, report: pd.DataFrame | None = None, confidence: float = 0.95
) -> pd.DataFrame:
    """Study-level reliability in one two-column table (``measure``, ``value``).

    Includes the numbers of raters, stimuli and test ratings, Krippendorff's alpha (interval and
    ordinal, :func:`krippendorff_alpha`), the test-retest summary (:func:`test_retest_summary`, its
    interval at ``confidence``) and, given a :func:`rater_report`, the numbers of BT.500-rejected
    and flagged raters and of raters left out of the :func:`mle_scores` model.
    """
    data = test_rows(ratings)
    rows = [
        ("raters", data["rater_id"].nunique()),
        ("stimuli", len(data.drop_duplicates(list(STIMULUS_KEY)))),
        ("test ratings", len(data)),
        ("Krippendorff alpha (interval)", krippendorff_alpha(ratings, "interval")),
        ("Krippendorff alpha (ordinal)", krippendorff_alpha(ratings, "ordinal")),
    ]
    retest = test_retest_summary(ratings, confidence=confidence)
    level = level_label(confidence)
    labels = {
        "n_pairs": "test-retest pairs", "pearson_r": "test-retest Pearson r",
        "pearson_ci_low": f"test-retest r, {level} CI low", "pearson_ci_high": f"test-retest r, {level} CI high",
        "icc_a1": "test-retest ICC(A,1)", "mean_abs_diff": "test-retest mean |second - first|",
        "mean_shift": "test-retest mean (second - first)", "wilcoxon_p": "test-retest Wilcoxon p (shift)",
    }  # fmt: skip
    rows += [(label, retest[key]) for key, label in labels.items()]
    if report is not None:
        rows.append(("raters rejected by BT.500-14 A1 2.3.1", int(report["bt500_rejected"].fillna(False).sum())))
        rows.append(("raters flagged (any rule)", int(report["flagged"].sum())))
        if "mle_modelled" in report.columns:
            rows.append(("raters left out of the P.910 rater model", int((~report["mle_modelled"]).sum())))
    # object dtype keeps counts as integers next to the coefficients
    return pd.DataFrame(rows, columns=["measure", "value"], dtype=object)
