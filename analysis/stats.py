"""Mean opinion scores, their confidence intervals and the significance tests of a MOS study.

All functions take the long ``ratings`` frame (one row per rating) and return new DataFrames; the
inputs are never modified.

``ratings`` columns: ``rater_id``, ``dataset``, ``image``, ``method``, ``score`` (integer 1..5), and
optionally ``kind`` ("test", "repeat", "gold"). Only ``kind == "test"`` rows (every row when there is
no ``kind`` column) count towards MOS; repeats and gold items feed :mod:`analysis.screening`. A row
whose score is missing is no rating: every function of the package leaves it out (:mod:`analysis._frames`).

References
----------
1. Ledig, C. et al. (2017). Photo-realistic single image super-resolution using a generative
   adversarial network. CVPR, section 3.3 (the MOS protocol and the paired Wilcoxon tests).
2. ITU-R BT.500-14 (2019). Methodologies for the subjective assessment of the quality of
   television images, Annex 1 (mean scores and confidence intervals).
3. ITU-T P.910 (2022). Subjective video quality assessment methods for multimedia applications.
"""

from __future__ import annotations

import itertools
import os
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import sparse
from scipy import stats as sps

from analysis._frames import ordered, percentile_interval, require_columns, test_rows

__all__ = [
    "TwoWayReplicates",
    "bootstrap_mos_ci",
    "holm",
    "metric_correlations",
    "metric_means",
    "mos_differences",
    "mos_table",
    "pairwise_tests",
    "per_image_mos",
    "significance_matrix",
    "two_way_replicates",
]

DEFAULT_METRICS = ("psnr_y", "ssim_y", "lpips", "dists", "niqe")


def mos_table(
    ratings: pd.DataFrame, by: Sequence[str] = ("dataset", "method"), confidence: float = 0.95
) -> pd.DataFrame:
    """Mean opinion score with a Student-t confidence interval per group.

    Parameters
    ----------
    ratings : pandas.DataFrame
        Long ratings frame (see the module docstring). Only test rows are used.
    by : sequence of str
        Grouping columns; ``("dataset", "method")`` gives the paper's Table 2 MOS.
    confidence : float
        Two-sided confidence level of the interval.

    Returns
    -------
    pandas.DataFrame
        The ``by`` columns, then ``n`` (ratings), ``mos`` (mean), ``std`` (sample standard deviation,
        ``ddof=1``), ``ci_low`` and ``ci_high``, sorted by the ``by`` columns. ``std`` and the
        interval are NaN for a group of one rating.

    Notes
    -----
    The interval is ``mos ± t_{(1+confidence)/2, n-1} · std / sqrt(n)``, the t-based form of the
    ITU-R BT.500 interval (which uses 1.96 in place of the t quantile). It treats the ratings of a
    group as independent draws. When a group pools several raters and images, ratings of the same
    rater or image are correlated and this interval is too narrow for the population of raters and
    images; :func:`bootstrap_mos_ci` resamples both and answers that question. For one stimulus
    (``by=("dataset", "image", "method")``) the raters are the independent units and the t
    interval is the standard one.

    References
    ----------
    1. ITU-R BT.500-14 (2019), Annex 1, Section 2 (mean score and confidence interval).
    2. Student (1908). The probable error of a mean. Biometrika 6(1), 1-25.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    by = list(by)
    data = test_rows(ratings)
    require_columns(data, by)
    grouped = data.groupby(by, sort=True, observed=True)["score"]
    out = grouped.agg(n="count", mos="mean", std="std").reset_index()  # pandas' own std: ddof 1, in C
    n = out["n"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = sps.t.ppf(0.5 + confidence / 2.0, n - 1.0)
        half = t * out["std"].to_numpy() / np.sqrt(n)
    half = np.where(n > 1, half, np.nan)
    out["ci_low"] = out["mos"] - half
    out["ci_high"] = out["mos"] + half
    out["n"] = out["n"].astype(int)
    return out[[*by, "n", "mos", "std", "ci_low", "ci_high"]]


def per_image_mos(ratings: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """MOS of every stimulus, i.e. :func:`mos_table` grouped by ``dataset, image, method``.

    Returns
    -------
    pandas.DataFrame
        ``dataset, image, method, n, mos, std, ci_low, ci_high``; here ``n`` counts raters.
    """
    return mos_table(ratings, by=("dataset", "image", "method"), confidence=confidence)


# --------------------------------------------------------------------------------------------
# Two-way (raters x images) cluster bootstrap
# --------------------------------------------------------------------------------------------


def _dataset_seed(seed: int | None, dataset: str) -> np.random.Generator:
    # A dataset's draws depend only on the seed and its own name, so adding or removing another
    # dataset from the frame does not change its interval.
    if seed is None:
        return np.random.default_rng()
    return np.random.default_rng([int(seed), zlib.crc32(str(dataset).encode("utf-8"))])


def _cell_sums(data: pd.DataFrame, methods: list) -> tuple[sparse.csr_matrix, sparse.csr_matrix, pd.Index, pd.Index]:
    """Sum and count of scores per (method, rater, image) cell for one dataset's test rows: two
    sparse matrices of shape (methods x raters, images), row ``m * R + r``, of one pattern (every
    rated cell; a crowd study rates a small part of its raters x images)."""
    r_codes, raters = pd.factorize(data["rater_id"], sort=True)
    i_codes, images = pd.factorize(data["image"], sort=True)
    m_codes = pd.Index(methods).get_indexer(data["method"])
    n_rows, n_i = len(methods) * len(raters), len(images)
    keys, cell = np.unique((m_codes.astype(np.int64) * len(raters) + r_codes) * n_i + i_codes, return_inverse=True)
    sums = np.bincount(cell, weights=data["score"].to_numpy(dtype=float), minlength=len(keys))
    counts = np.bincount(cell, minlength=len(keys)).astype(float)
    rows, cols = np.divmod(keys, n_i)
    indptr = np.searchsorted(rows, np.arange(n_rows + 1))
    return (sparse.csr_matrix((sums, cols, indptr), shape=(n_rows, n_i)),
            sparse.csr_matrix((counts, cols, indptr), shape=(n_rows, n_i)), raters, images)


def _method_totals(cells: sparse.csr_matrix, n_methods: int) -> np.ndarray:
    """Per method, the total of a ``_cell_sums`` matrix (its sum of scores, or its ratings)."""
    return np.asarray(cells.sum(axis=1)).reshape(n_methods, -1).sum(axis=1)


def _resample_counts(rng: np.random.Generator, n_units: int, n_boot: int) -> np.ndarray:
    """Multiplicities of ``n_units`` clusters in ``n_boot`` resamples with replacement, shape (B, n)."""
    draws = rng.integers(0, n_units, size=(n_boot, n_units))
    flat = (np.arange(n_boot)[:, None] * n_units + draws).ravel()
    return np.bincount(flat, minlength=n_boot * n_units).astype(float).reshape(n_boot, n_units)


def _chunk_draws(rng: np.random.Generator, n_raters: int, n_images: int, n_boot: int, chunk: int):
    """The rater and image multiplicities of ``n_boot`` two-way replicates, ``chunk`` at a time:
    per chunk the raters, then the images, from one generator. The one order of draws of every
    two-way interval of a dataset (:func:`two_way_replicates`); :func:`metric_correlations`
    replays it to resample a metric over the very images its MOS replicates drew."""
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        w = _resample_counts(rng, n_raters, b)
        yield w, _resample_counts(rng, n_images, b)


#: Integers up to this are exact in float32, and so is every sum of them that stays below it.
_FLOAT32_EXACT = 2**24


def _sparse_times_dense(matrix: sparse.csr_matrix, dense: np.ndarray, threads: int | None = None) -> np.ndarray:
    """``matrix @ dense`` with the rows split over ``threads`` (default: the CPU's cores, up to 8):
    SciPy's sparse product runs on one thread (releasing the GIL), and it is most of the bootstrap's
    share of a 10^6-rating report build; each row's sum is taken in the same order, so the result
    does not change."""
    if threads is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        threads = min(cores, 8, max(1, matrix.shape[0] // 1000))
    if threads == 1:
        return np.asarray(matrix @ dense)
    out = np.empty((matrix.shape[0], dense.shape[1]), dtype=np.result_type(matrix.dtype, dense.dtype))
    bounds = np.linspace(0, matrix.shape[0], threads + 1).astype(int)

    def part(k: int) -> None:
        out[bounds[k]:bounds[k + 1]] = matrix[bounds[k]:bounds[k + 1]] @ dense

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(part, range(threads)))
    return out


def _weighted_totals(cells: sparse.csr_matrix, w: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``sum_{r,i} w[b, r] v[b, i] cells[m * R + r, i]``, shape (B, M), in float32 when that is exact.

    With integer cells (an ACR study's score sums and counts) every product and partial sum is an
    integer no larger than ``max(v) x sum_r w[b, r] |row total|_{m, r}``; below 2^24 float32 holds
    each one exactly, so the result equals float64's to the bit, faster (the sparse product, where
    the bootstrap spends most of its time, moves half the bytes). Otherwise float64.
    """
    n_r = w.shape[1]
    n_m = cells.shape[0] // max(n_r, 1)
    data = cells.data
    exact = bool(data.size) and np.array_equal(data, np.rint(data))
    if exact:
        row_totals = np.abs(cells).sum(axis=1).A.reshape(n_m, n_r)
        exact = float((w @ row_totals.T).max()) * float(v.max()) < _FLOAT32_EXACT
    dtype = np.float32 if exact else np.float64
    by_rater = _sparse_times_dense(cells.astype(dtype), np.ascontiguousarray(v.T, dtype=dtype))  # (M * R, B)
    # One method at a time, both operands (R, B) in the same layout: five times faster than one
    # einsum over (M, R, B) against w's (B, R).
    w_t = np.ascontiguousarray(w.T, dtype=dtype)
    by_rater = by_rater.reshape(n_m, n_r, -1)
    return np.stack([np.einsum("rb,rb->b", by_rater[m], w_t) for m in range(n_m)], axis=1).astype(np.float64)


def _two_way_means(sums: sparse.csr_matrix, counts: sparse.csr_matrix, w: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Bootstrap means per method: sum_{r,i} w_r v_i S[m,r,i] / sum_{r,i} w_r v_i N[m,r,i], from the
    rated cells only (``_cell_sums``)."""
    num, den = _weighted_totals(sums, w, v), _weighted_totals(counts, w, v)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


class DatasetReplicates(NamedTuple):
    """One dataset's two-way replicates: ``boot`` the (B, M) bootstrap MOS of ``methods``, from the
    ``_cell_sums`` matrices ``sums`` and ``counts`` over ``raters`` x ``images``; ``draw_state`` the
    generator's state before the draws, so they can be replayed (with ``seed=None`` too)."""

    dataset: object
    methods: list
    raters: pd.Index
    images: pd.Index
    sums: sparse.csr_matrix
    counts: sparse.csr_matrix
    boot: np.ndarray
    draw_state: dict


def _replay_draws(replicates: DatasetReplicates, n_boot: int, chunk: int):
    """The multiplicities ``replicates`` were drawn with, again (:func:`_chunk_draws`)."""
    rng = np.random.default_rng()
    rng.bit_generator.state = replicates.draw_state
    return _chunk_draws(rng, len(replicates.raters), len(replicates.images), n_boot, chunk)


def _dataset_replicates(ratings: pd.DataFrame, n_boot: int, seed: int | None, chunk: int):
    """Per dataset, its :class:`DatasetReplicates`."""
    if n_boot < 1:
        raise ValueError("n_boot must be positive")
    data = test_rows(ratings)
    for dataset in sorted(data["dataset"].unique(), key=str):
        part = data.loc[data["dataset"] == dataset]
        methods = sorted(part["method"].unique(), key=str)
        sums, counts, raters, images = _cell_sums(part, methods)
        rng = _dataset_seed(seed, dataset)
        state = rng.bit_generator.state
        draws = _chunk_draws(rng, len(raters), len(images), n_boot, chunk)
        boot = np.concatenate([_two_way_means(sums, counts, w, v) for w, v in draws], axis=0)
        yield DatasetReplicates(dataset, methods, raters, images, sums, counts, boot, state)


@dataclass(frozen=True)
class TwoWayReplicates:
    """The two-way bootstrap replicates of one ratings frame, drawn once for :func:`bootstrap_mos_ci`,
    :func:`mos_differences` and :func:`metric_correlations` (the same draws: at 10^6 ratings each
    drawing is seconds)."""

    n_boot: int
    seed: int | None
    chunk: int
    per_dataset: tuple = field(repr=False)


def two_way_replicates(ratings: pd.DataFrame, n_boot: int = 2000, seed: int | None = 0,
                       chunk: int = 250) -> TwoWayReplicates:
    """The replicates :func:`bootstrap_mos_ci` and :func:`mos_differences` draw with these settings."""
    return TwoWayReplicates(n_boot, seed, chunk, tuple(_dataset_replicates(ratings, n_boot, seed, chunk)))


def _replicates(ratings, n_boot, seed, chunk, replicates: TwoWayReplicates | None):
    if replicates is None:
        return _dataset_replicates(ratings, n_boot, seed, chunk)
    if (replicates.n_boot, replicates.seed, replicates.chunk) != (n_boot, seed, chunk):
        raise ValueError(f"replicates drawn with n_boot={replicates.n_boot}, seed={replicates.seed}, "
                         f"chunk={replicates.chunk}, asked for {n_boot}, {seed}, {chunk}")
    return replicates.per_dataset


def bootstrap_mos_ci(
    ratings: pd.DataFrame,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int | None = 0,
    chunk: int = 250,
    replicates: TwoWayReplicates | None = None,
) -> pd.DataFrame:
    """Two-way cluster bootstrap (raters and images resampled) percentile interval of the MOS.

    Parameters
    ----------
    ratings : pandas.DataFrame
        Long ratings frame; only test rows are used.
    n_boot : int
        Number of bootstrap replicates.
    confidence : float
        Two-sided level of the percentile interval.
    seed : int or None
        Seed of the generator. Each dataset draws from its own stream derived from ``seed`` and the
        dataset's name, so results do not depend on which other datasets are in the frame.
    chunk : int
        Replicates computed at once (bounds memory to about ``chunk x methods x images`` floats).
    replicates : TwoWayReplicates, optional
        Replicates of the same ``ratings`` drawn before (:func:`two_way_replicates`) with the same
        ``n_boot``, ``seed`` and ``chunk``; drawn here when not given.

    Returns
    -------
    pandas.DataFrame
        ``dataset, method, n_boot, boot_se, boot_low, boot_high``: the standard deviation of the
        bootstrap means and the percentile interval, sorted like :func:`mos_table`.

    Notes
    -----
    Within a dataset, each replicate draws the raters with replacement and, independently, the
    images with replacement (the "both" or pigeonhole bootstrap for crossed random effects); a
    rating enters the replicate mean with weight ``w_rater * v_image``, the product of the
    multiplicities of its rater and its image. The same draws serve every method of the dataset.
    The interval answers "how far could the MOS move with other raters and other images of the same
    kind", which the t interval of :func:`mos_table` does not. Owen (2007) shows the variance
    estimate of this scheme is mildly conservative (it counts the residual variance twice).
    The computation is a pair of matrix products per chunk of replicates.

    References
    ----------
    1. Owen, A. B. (2007). The pigeonhole bootstrap. Annals of Applied Statistics 1(2), 386-411.
    2. Davison, A. C., Hinkley, D. V. (1997). Bootstrap Methods and their Application, section 3.8.
    3. Efron, B., Tibshirani, R. (1993). An Introduction to the Bootstrap, chapter 13.
    """
    rows = []
    for dataset, methods, _, _, _, _, boot, _ in _replicates(ratings, n_boot, seed, chunk, replicates):
        lo, hi = percentile_interval(boot, confidence, axis=0)
        with np.errstate(invalid="ignore"):
            se = np.nanstd(boot, axis=0, ddof=1) if n_boot > 1 else np.full(len(methods), np.nan)
        for k, method in enumerate(methods):
            rows.append((dataset, method, n_boot, se[k], lo[k], hi[k]))
    return pd.DataFrame(rows, columns=["dataset", "method", "n_boot", "boot_se", "boot_low", "boot_high"])


# --------------------------------------------------------------------------------------------
# Pairwise significance tests
# --------------------------------------------------------------------------------------------


def holm(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control), monotone and capped at 1.

    Parameters
    ----------
    p_values : array_like
        Unadjusted p-values of one family. NaN entries stay NaN and do not count in the family size.

    Returns
    -------
    numpy.ndarray
        Adjusted p-values in the input order: with the non-NaN p-values sorted increasingly,
        ``p_(k)^adj = max_{j <= k} min(1, (m - j + 1) p_(j))``.

    References
    ----------
    1. Holm, S. (1979). A simple sequentially rejective multiple test procedure. Scandinavian
       Journal of Statistics 6(2), 65-70.
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    if valid.size == 0:
        return out
    if np.any((p[valid] < 0) | (p[valid] > 1)):
        raise ValueError("p-values must lie in [0, 1]")
    m = valid.size
    order = valid[np.argsort(p[valid], kind="mergesort")]
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(scaled)
    return out


def _paired_test(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float, int]:
    """Wilcoxon signed-rank (SciPy defaults) on x - y, matched-pairs rank-biserial, non-zero count."""
    d = x - y
    nonzero = d[d != 0]
    if nonzero.size == 0:
        # Every difference is zero: no evidence of a difference at all. SciPy returns a NaN
        # z-score (and a warning) here; the test's answer is p = 1, statistic 0, effect 0.
        return 0.0, 1.0, 0.0, 0
    res = sps.wilcoxon(x, y)
    ranks = sps.rankdata(np.abs(nonzero))
    r_plus = ranks[nonzero > 0].sum()
    r_minus = ranks[nonzero < 0].sum()
    effect = (r_plus - r_minus) / (r_plus + r_minus)
    return float(res.statistic), float(res.pvalue), float(effect), int(nonzero.size)


def _independent_test(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Two-sided Mann-Whitney U (statistic for x) and the rank-biserial correlation 2U/(n1 n2) - 1."""
    n1, n2 = x.size, y.size
    if np.all(x == x[0]) and np.all(y == x[0]):
        return n1 * n2 / 2.0, 1.0, 0.0  # one value throughout: identical samples
    res = sps.mannwhitneyu(x, y, alternative="two-sided")
    u = float(res.statistic)
    return u, float(res.pvalue), 2.0 * u / (n1 * n2) - 1.0


PAIRWISE_COLUMNS = [
    "dataset", "method_a", "method_b", "n", "statistic", "p_value", "p_holm", "effect_size",
    "test", "n_a", "n_b", "n_nonzero", "mos_a", "mos_b", "mean_diff",
]  # fmt: skip


def pairwise_tests(
    ratings: pd.DataFrame,
    methods: Sequence[str] | None = None,
    min_paired_fraction: float = 0.5,
) -> pd.DataFrame:
    """Every pair of methods within each dataset: the paper's paired two-sided Wilcoxon test.

    Parameters
    ----------
    ratings : pandas.DataFrame
        Long ratings frame; only test rows are used.
    methods : sequence of str, optional
        Method order; pairs ``(a, b)`` follow it with ``a`` before ``b``. Methods not listed come
        after, sorted by name. Default: sorted by name.
    min_paired_fraction : float
        The paired test is used when the (rater_id, image) pairs rated under both methods number at
        least this share of the smaller method's ratings (and at least one); otherwise the methods
        were rated by different raters or on different images and Mann-Whitney U on all their
        ratings is used.

    Returns
    -------
    pandas.DataFrame
        ``dataset, method_a, method_b, n, statistic, p_value, p_holm, effect_size`` then ``test``
        ("wilcoxon" or "mannwhitneyu"), ``n_a``, ``n_b`` (ratings of each method), ``n_nonzero``
        (non-zero paired differences; NaN for Mann-Whitney), ``mos_a``, ``mos_b`` and ``mean_diff``
        (``mos_a - mos_b`` over the observations the test used). ``n`` is the number of pairs for
        the Wilcoxon test and ``n_a + n_b`` for Mann-Whitney.

    Notes
    -----
    Paired test: ratings are matched on ``(rater_id, image)`` (a rater's two ratings of the same
    image under two methods), and ``scipy.stats.wilcoxon(x, y)`` is called with its defaults
    (``zero_method="wilcox"``: zero differences are dropped; ``correction=False``;
    ``method="auto"``: exact null distribution for n <= 50 without ties or zeros, otherwise the
    normal approximation with tie correction, or a full permutation for n <= 13). ``statistic`` is
    SciPy's, min(W+, W-). If every difference is zero the test has nothing to rank; the function
    returns ``statistic = 0``, ``p_value = 1`` and ``effect_size = 0`` instead of SciPy's NaN.

    ``effect_size`` is the matched-pairs rank-biserial correlation (Kerby, 2014),
    ``(W+ - W-) / (W+ + W-)`` over the non-zero differences ``x - y``: positive when ``method_a``
    scores higher, +1 when it wins every non-tied pair. For Mann-Whitney it is the rank-biserial
    correlation ``2 U_a / (n_a n_b) - 1`` (Wendt, 1972), with the same sign convention.

    ``p_holm`` applies Holm's correction (:func:`holm`) across all pairs of a dataset. The paper
    reports unadjusted p < 0.05; both are given.

    References
    ----------
    1. Wilcoxon, F. (1945). Individual comparisons by ranking methods. Biometrics Bulletin 1(6), 80-83.
    2. Kerby, D. S. (2014). The simple difference formula: an approach to teaching nonparametric
       correlation. Comprehensive Psychology 3, 11.IT.3.1.
    3. Mann, H. B., Whitney, D. R. (1947). On a test of whether one of two random variables is
       stochastically larger than the other. Annals of Mathematical Statistics 18(1), 50-60.
    4. Wendt, H. W. (1972). Dealing with a common problem in social science: a simplified
       rank-biserial coefficient of correlation based on the U statistic. European Journal of
       Social Psychology 2(4), 463-465.
    5. Holm, S. (1979). Scandinavian Journal of Statistics 6(2), 65-70.
    6. Ledig, C. et al. (2017). CVPR, section 3.3 and supplement.
    """
    data = test_rows(ratings)
    rows = []
    for dataset in sorted(data["dataset"].unique(), key=str):
        part = data.loc[data["dataset"] == dataset]
        # One value per (rater, image, method); duplicates (possible only without a `kind` column)
        # are averaged so that pairing stays one-to-one.
        cells = part.pivot_table(index=["rater_id", "image"], columns="method", values="score", aggfunc="mean")
        order = ordered(cells.columns, methods)
        family = []
        for a, b in itertools.combinations(order, 2):
            xa = cells[a].to_numpy()
            xb = cells[b].to_numpy()
            has_a, has_b = ~np.isnan(xa), ~np.isnan(xb)
            both = has_a & has_b
            n_a, n_b, n_pairs = int(has_a.sum()), int(has_b.sum()), int(both.sum())
            if n_pairs >= 1 and n_pairs >= min_paired_fraction * min(n_a, n_b):
                x, y = xa[both], xb[both]
                stat, p, eff, n_nonzero = _paired_test(x, y)
                row = [dataset, a, b, n_pairs, stat, p, np.nan, eff, "wilcoxon", n_a, n_b, n_nonzero]
            else:
                x, y = xa[has_a], xb[has_b]
                stat, p, eff = _independent_test(x, y)
                row = [dataset, a, b, n_a + n_b, stat, p, np.nan, eff, "mannwhitneyu", n_a, n_b, np.nan]
            row += [float(x.mean()), float(y.mean()), float(x.mean() - y.mean())]
            family.append(row)
        p_adj = holm([r[5] for r in family])
        for r, q in zip(family, p_adj):
            r[6] = float(q)
        rows.extend(family)
    out = pd.DataFrame(rows, columns=PAIRWISE_COLUMNS)
    out["n_nonzero"] = out["n_nonzero"].astype("Int64")
    return out


DIFFERENCE_COLUMNS = [
    "dataset", "method_a", "method_b", "n_raters", "n_images", "mean_diff", "diff_se", "boot_se", "df", "t",
    "p_value", "p_holm", "diff_low", "diff_high",
]  # fmt: skip


def mos_differences(
    ratings: pd.DataFrame,
    methods: Sequence[str] | None = None,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int | None = 0,
    chunk: int = 250,
    replicates: TwoWayReplicates | None = None,
) -> pd.DataFrame:
    """Every pair of methods within each dataset: the MOS difference, a test and an interval that
    generalise over raters and over images.

    Parameters
    ----------
    ratings : pandas.DataFrame
        Long ratings frame; only test rows are used. The design may be incomplete.
    methods : sequence of str, optional
        Pair order, as in :func:`pairwise_tests`.
    n_boot, confidence, seed, chunk, replicates
        As in :func:`bootstrap_mos_ci`, whose replicates (same seed, same draws) give ``boot_se``.

    Returns
    -------
    pandas.DataFrame
        ``dataset, method_a, method_b, n_raters, n_images`` (who rated either method),
        ``mean_diff`` (``MOS_a - MOS_b``), ``diff_se`` (two-way cluster-robust standard error),
        ``boot_se`` (two-way bootstrap standard error, for comparison), ``df``, ``t``,
        ``p_value`` (two-sided), ``p_holm`` (Holm across the dataset's pairs) and the interval
        ``diff_low, diff_high`` = ``mean_diff +- t_{df} diff_se``.

    Notes
    -----
    Raters and images are both clusters: ratings by one rater, or of one image, are correlated,
    and a rater's or an image's liking for one method is variation, not evidence. The two-way
    cluster bootstrap (``boot_se``: raters and images resampled, Owen 2007) and the two-way
    cluster-robust variance of Cameron, Gelbach & Miller (2011) both say so; the test uses the
    latter, because the bootstrap counts the residual variance of every (rater, image) cell again
    and, measured on simulated nulls (``benchmarks/pairwise_level.py``), rejects a single true
    null 1-2% of the time at 5%, losing power for nothing. With ``psi_k = (y_k - MOS_a) / n_a``
    for a rating of ``a`` and ``-(y_k - MOS_b) / n_b`` for one of ``b``, and ``V_g = G / (G - 1)
    (N - 1) / (N - 2) sum_g (sum_{k in g} psi_k)^2`` for a clustering into ``G`` groups,
    ``diff_se^2 = V_rater + V_image - V_(rater, image)`` (``max(V_rater, V_image)`` in the rare
    case this is not positive). This is the variance statsmodels computes for OLS with two
    cluster groups. A crossed random-effects model would answer the same question, but asks 1..5
    scores to be normal and a variance-component fit per pair, which lands on zero or fails with
    ten raters. ``t = mean_diff / diff_se`` is referred to Student's t with ``df = min(n_raters,
    n_images) - 1``, the few-clusters rule of the same authors: the normal quantile rejects too
    often with ten raters or six images. ``p_value`` is 1 when the difference and its standard
    error are both zero, 0 when only the standard error is. The test answers "would other
    raters, rating other images of the same kind, also rate ``a`` and ``b`` apart?".

    References
    ----------
    1. Cameron, A. C., Gelbach, J. B., Miller, D. L. (2011). Robust inference with multiway
       clustering. Journal of Business & Economic Statistics 29(2), 238-249.
    2. Owen, A. B. (2007). The pigeonhole bootstrap. Annals of Applied Statistics 1(2), 386-411.
    3. Judd, C. M., Westfall, J., Kenny, D. A. (2012). Treating stimuli as a random factor in
       social psychology. Journal of Personality and Social Psychology 103(1), 54-69.
    4. Holm, S. (1979). Scandinavian Journal of Statistics 6(2), 65-70.
    """
    rows = []
    for dataset, present, _, _, sums, counts, boot, _ in _replicates(ratings, n_boot, seed, chunk, replicates):
        n_r_all, n_i_all = sums.shape[0] // len(present), sums.shape[1]
        n = _method_totals(counts, len(present))
        with np.errstate(invalid="ignore", divide="ignore"):
            mos = _method_totals(sums, len(present)) / n
        # Per rated (method, rater, image) cell, the sum of the ratings' deviations from their method's MOS.
        cells = sums.tocoo()  # counts has the same pattern
        m_of, r_of = np.divmod(cells.row, n_r_all)
        key = r_of.astype(np.int64) * n_i_all + cells.col  # the (rater, image) of the cell
        dev = cells.data - counts.tocoo().data * mos[m_of]
        of_method = [np.flatnonzero(m_of == k) for k in range(len(present))]
        index = {m: k for k, m in enumerate(present)}
        family = []
        for a, b in itertools.combinations(ordered(present, methods), 2):
            ka, kb = index[a], index[b]
            ia, ib = of_method[ka], of_method[kb]
            # Sum of psi_k per (rater, image) cell that either method was rated in.
            rated, at = np.unique(np.concatenate([key[ia], key[ib]]), return_inverse=True)
            cell = np.bincount(at, weights=np.concatenate([dev[ia] / n[ka], -dev[ib] / n[kb]]), minlength=len(rated))
            cell_r, cell_i = np.divmod(rated, n_i_all)
            n_r, n_i = len(np.unique(cell_r)), len(np.unique(cell_i))
            se = _two_way_cluster_se(cell, cell_r, cell_i, int(n[ka] + n[kb]))
            diff = float(mos[ka] - mos[kb])
            with np.errstate(invalid="ignore"):
                boot_se = float(np.nanstd(boot[:, ka] - boot[:, kb], ddof=1)) if n_boot > 1 else np.nan
            df = float(min(n_r, n_i) - 1)
            family.append([dataset, a, b, n_r, n_i, diff, se, boot_se, df, *_t_test(diff, se, df, confidence)])
        for r, q in zip(family, holm([r[10] for r in family])):
            r[11] = float(q)
        rows.extend(family)
    return pd.DataFrame(rows, columns=DIFFERENCE_COLUMNS)


def _two_way_cluster_se(cell: np.ndarray, cell_r: np.ndarray, cell_i: np.ndarray, n_obs: int) -> float:
    """Cameron-Gelbach-Miller two-way cluster-robust SE from the influence sums of the rated
    (rater, image) cells ``(cell_r, cell_i)``."""

    def part(sums: np.ndarray) -> float:
        g = sums.size
        return g / (g - 1) * (n_obs - 1) / (n_obs - 2) * float(np.sum(sums**2)) if g > 1 and n_obs > 2 else np.nan

    def by(codes: np.ndarray) -> np.ndarray:
        return np.bincount(codes, weights=cell)[np.unique(codes)]

    var = part(by(cell_r)) + part(by(cell_i)) - part(cell)
    if not var > 0:
        var = max(part(by(cell_r)), part(by(cell_i)))
    return float(np.sqrt(var))


def _t_test(diff: float, se: float, df: float, confidence: float) -> tuple[float, float, float, float, float]:
    """``t, p_value, p_holm`` (filled in later), and the interval of a difference with standard error ``se``."""
    if not (df >= 1 and np.isfinite(se)):
        return np.nan, np.nan, np.nan, np.nan, np.nan
    if se == 0:
        return np.nan, 1.0 if diff == 0 else 0.0, np.nan, diff, diff
    t = diff / se
    half = sps.t.ppf(0.5 + confidence / 2.0, df) * se
    return t, float(2.0 * sps.t.sf(abs(t), df)), np.nan, diff - half, diff + half


def significance_matrix(
    pairwise: pd.DataFrame,
    dataset: str,
    alpha: float = 0.05,
    adjusted: bool = True,
    methods: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Square method-by-method summary of :func:`pairwise_tests` or :func:`mos_differences` for one dataset.

    Parameters
    ----------
    pairwise : pandas.DataFrame
        Output of :func:`pairwise_tests` or of :func:`mos_differences`.
    dataset : str
        Dataset to show.
    alpha : float
        Significance level.
    adjusted : bool
        Use Holm-adjusted p-values (``p_holm``) when True, the raw ``p_value`` otherwise.
    methods : sequence of str, optional
        Row and column order; default: the order of appearance in ``pairwise``.

    Returns
    -------
    pandas.DataFrame
        Float matrix indexed by method (rows) and method (columns): ``+1`` where the row method's
        ratings are significantly higher than the column method's, ``-1`` where significantly lower,
        ``0`` where not significant, NaN on the diagonal and for pairs without a test. The direction
        is the sign of ``effect_size`` (of ``mean_diff`` if the effect size is exactly zero or absent).
    """
    require_columns(pairwise, ["dataset", "method_a", "method_b", "p_value", "p_holm"], "pairwise")
    if "effect_size" not in pairwise.columns:
        require_columns(pairwise, ["mean_diff"], "pairwise")
        pairwise = pairwise.assign(effect_size=0.0)
    part = pairwise.loc[pairwise["dataset"] == dataset]
    appearance = list(dict.fromkeys(itertools.chain.from_iterable(zip(part["method_a"], part["method_b"]))))
    order = [m for m in methods if m in appearance] if methods is not None else appearance
    mat = pd.DataFrame(np.nan, index=pd.Index(order, name="method"), columns=pd.Index(order, name="versus"))
    p_col = "p_holm" if adjusted else "p_value"
    for row in part.itertuples(index=False):
        a, b = row.method_a, row.method_b
        if a not in mat.index or b not in mat.index:
            continue
        direction = np.sign(row.effect_size)
        if direction == 0 and "mean_diff" in part.columns:
            direction = np.sign(row.mean_diff)
        value = float(direction) if getattr(row, p_col) < alpha else 0.0
        mat.loc[a, b] = value
        mat.loc[b, a] = -value if value != 0 else 0.0
    return mat


# --------------------------------------------------------------------------------------------
# Objective metrics against MOS
# --------------------------------------------------------------------------------------------


def metric_means(stimuli: pd.DataFrame, metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """Mean of each objective metric per (dataset, method) over the dataset's images.

    Parameters
    ----------
    stimuli : pandas.DataFrame
        One row per (dataset, image, method) with metric columns such as ``psnr_y``, ``ssim_y`` and
        ``lpips``.
    metrics : sequence of str, optional
        Metric columns to average; default those of ``psnr_y, ssim_y, lpips`` present.

    Returns
    -------
    pandas.DataFrame
        ``dataset, method, n_images`` and one column per metric (NaN where a method has no value,
        e.g. PSNR of the HR original). Like the paper's Table 2, PSNR is averaged in dB per image.
    """
    require_columns(stimuli, ["dataset", "image", "method"], "stimuli")
    metrics = [m for m in (metrics or DEFAULT_METRICS) if m in stimuli.columns]
    frame = stimuli[["dataset", "image", "method", *metrics]].copy()
    for m in metrics:
        frame[m] = pd.to_numeric(frame[m], errors="coerce").astype(float)
    grouped = frame.groupby(["dataset", "method"], sort=True)
    out = grouped["image"].nunique().rename("n_images").to_frame()
    if metrics:
        out = out.join(grouped[metrics].mean())
    return out.reset_index()


def _rank_rows(a: np.ndarray) -> np.ndarray:
    return sps.rankdata(a, axis=1)


def _spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman correlation of each row pair (average ranks for ties)."""
    rx, ry = _rank_rows(x), _rank_rows(y)
    rx = rx - rx.mean(axis=1, keepdims=True)
    ry = ry - ry.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rx * ry).sum(1) / np.sqrt((rx**2).sum(1) * (ry**2).sum(1))


def _kendall_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's tau-b of each row pair (as ``scipy.stats.kendalltau``'s default variant)."""
    sx = np.sign(x[:, :, None] - x[:, None, :])
    sy = np.sign(y[:, :, None] - y[:, None, :])
    iu = np.triu_indices(x.shape[1], k=1)
    sx, sy = sx[:, iu[0], iu[1]], sy[:, iu[0], iu[1]]
    with np.errstate(invalid="ignore", divide="ignore"):
        return (sx * sy).sum(1) / np.sqrt((sx != 0).sum(1) * (sy != 0).sum(1))


def metric_correlations(
    ratings: pd.DataFrame,
    stimuli: pd.DataFrame,
    metrics: Sequence[str] | None = None,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int | None = 0,
    exclude: Sequence[str] = ("hr",),
    chunk: int = 250,
    replicates: TwoWayReplicates | None = None,
) -> pd.DataFrame:
    """Spearman and Kendall rank correlation between per-method MOS and per-method mean metric.

    Parameters
    ----------
    ratings, stimuli : pandas.DataFrame
        Ratings (test rows are used) and per-stimulus metrics (see :func:`metric_means`).
    metrics : sequence of str, optional
        Metric columns; default those of ``psnr_y, ssim_y, lpips`` present with values.
    n_boot, confidence, seed, chunk
        Bootstrap replicates, interval level, seed and chunk of :func:`bootstrap_mos_ci`, whose
        replicates these are.
    exclude : sequence of str
        Methods left out, by default the HR original (no PSNR). They stay in the resampled design,
        so the MOS replicates are those of :func:`bootstrap_mos_ci`.
    replicates : TwoWayReplicates, optional
        The replicates of :func:`two_way_replicates` with the same settings; drawn here when not given.

    Returns
    -------
    pandas.DataFrame
        ``dataset, metric, n_methods, spearman, spearman_low, spearman_high, kendall, kendall_low,
        kendall_high``. The point estimates are ``scipy.stats.spearmanr`` and ``kendalltau``
        (tau-b) over the methods with both a MOS and a metric value.

    Notes
    -----
    The interval reflects the measurement uncertainty of the fixed set of methods: each replicate
    is one of :func:`bootstrap_mos_ci`'s (raters and images resampled), with every method's mean
    metric recomputed over the images that replicate drew, and the two rank correlations
    recomputed. With a handful
    of methods the correlations are coarse (Kendall's tau moves in steps of ``2 / (k (k-1) / 2)``);
    the percentile interval says how stable the ordering is, not how the result generalises to
    other methods. A negative PSNR-MOS correlation is the perception-distortion trade-off of Blau
    and Michaeli (2018).

    References
    ----------
    1. Blau, Y., Michaeli, T. (2018). The perception-distortion tradeoff. CVPR.
    2. Kendall, M. G. (1945). The treatment of ties in ranking problems. Biometrika 33(3), 239-251.
    3. Owen, A. B. (2007). The pigeonhole bootstrap. Annals of Applied Statistics 1(2), 386-411.
    """
    stim = stimuli.loc[~stimuli["method"].isin(exclude)]
    metrics = [m for m in (metrics or DEFAULT_METRICS) if m in stim.columns and stim[m].notna().any()]
    rows = []
    for drawn in _replicates(ratings, n_boot, seed, chunk, replicates):
        dataset, methods, images, sums, counts, boot = (drawn.dataset, drawn.methods, drawn.images, drawn.sums,
                                                        drawn.counts, drawn.boot)  # fmt: skip
        st = stim.loc[stim["dataset"] == dataset]
        with np.errstate(invalid="ignore", divide="ignore"):
            mos = _method_totals(sums, len(methods)) / _method_totals(counts, len(methods))
        modelled = ~np.isin(methods, list(exclude))
        kept = {}  # metric -> (methods kept, their per-image values with 0 for missing, present)
        for metric in metrics:
            table = st.pivot_table(index="method", columns="image", values=metric, aggfunc="mean", observed=True)
            x = table.reindex(index=methods, columns=images).to_numpy(dtype=float)  # (M, I)
            keep = modelled & ~np.isnan(x).all(axis=1) & ~np.isnan(mos)
            if keep.sum() >= 3:
                kept[metric] = (keep, np.nan_to_num(x[keep]), (~np.isnan(x[keep])).astype(float))
        if not kept:
            continue
        # The image multiplicities of the MOS replicates, replayed: the metric is resampled over the
        # images each replicate drew for its MOS.
        boot_metric = {metric: [] for metric in kept}
        for _, v in _replay_draws(drawn, n_boot, chunk):
            for metric, (_, values, present) in kept.items():
                # einsum, not a BLAS product: a threaded BLAS call per chunk cost more than the product
                boot_metric[metric].append(np.einsum("mi,bi->bm", values, v) / np.einsum("mi,bi->bm", present, v))
        for metric, (keep, values, present) in kept.items():
            point_metric = values.sum(axis=1) / present.sum(axis=1)  # np.nanmean's sum and count
            bm, bx = boot[:, keep], np.concatenate(boot_metric[metric])
            ok = ~np.isnan(bm).any(1) & ~np.isnan(bx).any(1)
            sp = _spearman_rows(bx[ok], bm[ok])
            kt = _kendall_rows(bx[ok], bm[ok])
            sp_lo, sp_hi = percentile_interval(sp, confidence)
            kt_lo, kt_hi = percentile_interval(kt, confidence)
            rho = sps.spearmanr(point_metric, mos[keep]).statistic
            tau = sps.kendalltau(point_metric, mos[keep]).statistic
            rows.append((dataset, metric, int(keep.sum()), rho, sp_lo, sp_hi, tau, kt_lo, kt_hi))
    cols = ["dataset", "metric", "n_methods", "spearman", "spearman_low", "spearman_high",
            "kendall", "kendall_low", "kendall_high"]  # fmt: skip
    return pd.DataFrame(rows, columns=cols)
