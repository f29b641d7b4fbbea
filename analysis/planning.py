"""Planning a MOS study by simulation: how many raters for narrow intervals or enough power.

Every planner simulates crossed studies of the latent-score model of :mod:`analysis.simulation`
over a :class:`~analysis.simulation.Population` (default :data:`PLANNING_POPULATION`: the
simulator's, with an image effect of 0.3), with common random numbers across the numbers of raters
so the curves are smooth.

References
----------
1. ITU-T P.910 (2022). Subjective video quality assessment methods for multimedia applications,
   Annex E (subject bias and inconsistency model).
2. Ledig, C. et al. (2017). CVPR, section 3.3 (26 raters; 12/12/9 methods on Set5/Set14/BSD100).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats as sps

from analysis.simulation import Population, crossed_scores, latent_location, targets_frame
from analysis.simulation import simulate_study  # noqa: F401 - its old home: tests/ratings and benchmarks import it here

__all__ = [
    "PLANNING_POPULATION",
    "PlanResult",
    "power_for_difference",
    "raters_needed_for_ci_width",
    "raters_needed_for_power",
]

#: The population the planners assume unless told otherwise.
PLANNING_POPULATION = Population(image_sd=0.3)


def _crossed(population: Population) -> Population:
    """The planners simulate crossed studies without interactions: refuse a population that has them."""
    if population.rater_method_sd or population.image_method_sd:
        raise ValueError("the planners simulate no rater x method or image x method effects; use simulate_study")
    return population


@dataclass(frozen=True)
class PlanResult:
    """Answer of a planner: the smallest sufficient number of raters and the curve behind it.

    ``n_raters`` is None when even the largest number tried does not meet the target.
    """

    n_raters: int | None
    curve: pd.DataFrame = field(repr=False)


def raters_needed_for_ci_width(
    true_mos: pd.DataFrame | Mapping,
    target_half_width: float,
    n_images: int = 10,
    *,
    level: str = "method",
    confidence: float = 0.95,
    assurance: float = 0.8,
    max_raters: int = 100,
    n_sims: int = 200,
    population: Population = PLANNING_POPULATION,
    seed: int = 0,
) -> PlanResult:
    """Smallest number of raters whose t confidence intervals are narrow enough, by simulation.

    Parameters
    ----------
    true_mos : pandas.DataFrame or mapping
        Planned population MOS per (dataset, method), as for :func:`simulate_study`.
    target_half_width : float
        Required half-width of the interval, in MOS points.
    n_images : int
        Images per dataset, each rated by every rater under every method.
    level : {"method", "stimulus"}
        "method": the interval of each (dataset, method) MOS as :func:`analysis.stats.mos_table`
        computes it (all ``n_raters x n_images`` ratings); "stimulus": the interval of each
        stimulus' MOS over the raters (:func:`analysis.stats.per_image_mos`).
    confidence : float
        Level of the intervals.
    assurance : float
        Required share of simulated studies in which the *widest* interval meets the target.
    max_raters : int
        Largest number of raters tried; every number from 2 to ``max_raters`` is evaluated.
    n_sims : int
        Simulated studies. The studies for ``n`` raters are the first ``n`` raters of the same
        ``max_raters``-rater studies (common random numbers), so the curve is smooth in ``n``.
    population, seed
        Population (:class:`~analysis.simulation.Population`) and seed.

    Returns
    -------
    PlanResult
        ``n_raters`` and a curve with ``n_raters, half_width_mean, half_width_q`` (the
        ``assurance`` quantile of the widest half-width) and ``share_meeting``.

    Notes
    -----
    The "method" interval is the conventional one, which treats ratings as independent; it is
    narrower than the two-way bootstrap interval of :func:`analysis.stats.bootstrap_mos_ci` when
    raters and images vary, so plan on the "stimulus" level or with margin if the bootstrap interval
    is what you will report.
    """
    if level not in ("method", "stimulus"):
        raise ValueError("level must be 'method' or 'stimulus'")
    if max_raters < 2:
        raise ValueError("max_raters must be at least 2")
    pop = _crossed(population)
    rng = np.random.default_rng(seed)
    targets = targets_frame(true_mos)
    mu = latent_location(targets["true_mos"].to_numpy(), pop)
    n_cells = len(targets)
    dataset_codes = pd.factorize(targets["dataset"])[0]
    n_ds = dataset_codes.max() + 1
    # Stimuli: cell-major, n_images per cell; the image effect is shared within a dataset.
    latent = np.repeat(mu, n_images)
    shape = (n_sims, n_ds, n_images)
    eta = rng.normal(0.0, pop.image_sd, shape) if pop.image_sd > 0 else np.zeros(shape)
    image_effect = eta[:, dataset_codes, :].reshape(n_sims, -1)
    scores = crossed_scores(rng, latent, n_sims, max_raters, pop, image_effect)
    n_range = np.arange(2, max_raters + 1)
    if level == "method":
        per_cell = scores.reshape(n_sims, max_raters, n_cells, n_images)
        s1 = np.cumsum(per_cell.sum(-1), axis=1)  # (sims, raters, cells)
        s2 = np.cumsum((per_cell**2).sum(-1), axis=1)
        n_obs = (np.arange(1, max_raters + 1) * n_images)[None, :, None]
    else:
        s1 = np.cumsum(scores, axis=1)
        s2 = np.cumsum(scores**2, axis=1)
        n_obs = np.arange(1, max_raters + 1)[None, :, None]
    n_obs = n_obs.astype(float)
    var = np.maximum(s2 - s1**2 / n_obs, 0.0) / np.maximum(n_obs - 1.0, 1.0)
    t = sps.t.ppf(0.5 + confidence / 2.0, np.maximum(n_obs - 1.0, 1.0))
    half = t * np.sqrt(var / n_obs)  # (sims, raters, cells)
    widest = half.max(axis=2)[:, n_range - 1]  # (sims, len(n_range))
    curve = pd.DataFrame(
        {
            "n_raters": n_range,
            "half_width_mean": widest.mean(axis=0),
            "half_width_q": np.quantile(widest, assurance, axis=0),
            "share_meeting": (widest <= target_half_width).mean(axis=0),
        }
    )
    ok = curve.loc[curve["share_meeting"] >= assurance, "n_raters"]
    return PlanResult(int(ok.iloc[0]) if len(ok) else None, curve)


def _clopper_pearson(k: np.ndarray, n: int, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    alpha = 1.0 - confidence
    lo = np.where(k > 0, sps.beta.ppf(alpha / 2, k, n - k + 1), 0.0)
    hi = np.where(k < n, sps.beta.ppf(1 - alpha / 2, k + 1, n - k), 1.0)
    return lo, hi


def power_for_difference(
    mos_a: float,
    mos_b: float,
    n_raters: int | Sequence[int],
    n_images: int = 10,
    *,
    alpha: float = 0.05,
    n_sims: int = 200,
    population: Population = PLANNING_POPULATION,
    seed: int = 0,
) -> pd.DataFrame:
    """Power of the paper's paired two-sided Wilcoxon test to tell two methods apart, by simulation.

    Parameters
    ----------
    mos_a, mos_b : float
        Population MOS of the two methods (as :func:`analysis.simulation.simulate_study` defines it).
    n_raters : int or sequence of int
        Numbers of raters to evaluate; each rates ``n_images`` images under both methods.
    n_images : int
        Images (pairs per rater).
    alpha : float
        Level of the test.
    n_sims : int
        Simulated studies per number of raters (common random numbers across the numbers).
    population, seed
        Population (:class:`~analysis.simulation.Population`) and seed.

    Returns
    -------
    pandas.DataFrame
        ``n_raters, n_images, power, power_low, power_high, n_sims``, with the Clopper-Pearson 95%
        interval of the simulated power.

    Notes
    -----
    Each study pairs a rater's two ratings of the same image, and calls
    ``scipy.stats.wilcoxon(x, y, axis=1)`` with its defaults over all studies at once; a study whose
    differences are all zero counts as not significant. With ``mos_a == mos_b`` the result is the
    test's type-I error rate.
    """
    counts = np.atleast_1d(np.asarray(n_raters, dtype=int))
    if counts.min() < 1:
        raise ValueError("n_raters must be positive")
    pop = _crossed(population)
    rng = np.random.default_rng(seed)
    mu = latent_location(np.array([mos_a, mos_b]), pop)
    latent = np.concatenate([np.full(n_images, mu[0]), np.full(n_images, mu[1])])
    eta = rng.normal(0.0, pop.image_sd, (n_sims, n_images)) if pop.image_sd > 0 else np.zeros((n_sims, n_images))
    scores = crossed_scores(rng, latent, n_sims, int(counts.max()), pop, np.tile(eta, 2))
    rows = []
    for n in counts:
        x = scores[:, :n, :n_images].reshape(n_sims, -1)
        y = scores[:, :n, n_images:].reshape(n_sims, -1)
        all_zero = (x == y).all(axis=1)
        p = np.ones(n_sims)
        if (~all_zero).any():
            p[~all_zero] = _wilcoxon_p(x[~all_zero], y[~all_zero])
        k = int((p < alpha).sum())
        lo, hi = _clopper_pearson(np.array(k), n_sims)
        rows.append((int(n), n_images, k / n_sims, float(lo), float(hi), n_sims))
    return pd.DataFrame(rows, columns=["n_raters", "n_images", "power", "power_low", "power_high", "n_sims"])


def _wilcoxon_p(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Two-sided p-values of ``scipy.stats.wilcoxon(x, y)`` (defaults) for each row of x, y.

    SciPy's default switches to an exact permutation test over all 2^n sign flips when n <= 13 and
    there are ties or zeros, which it evaluates slowly for stacked rows; that case is enumerated here
    with the same definition (``2 min(P(T <= t), P(T >= t))``, capped at 1, T the sum of positive
    ranks). Other cases are passed to SciPy unchanged.
    """
    n = x.shape[1]
    d = x - y
    ties = np.array([np.unique(np.abs(row[row != 0])).size < np.count_nonzero(row) for row in d])
    small = (n <= 13) & (ties | (d == 0).any(axis=1))
    p = np.empty(len(d))
    if (~small).any():
        p[~small] = sps.wilcoxon(x[~small], y[~small], axis=1).pvalue
    if small.any():
        ds = d[small]
        absd = np.where(ds == 0, np.nan, np.abs(ds))
        ranks = np.nan_to_num(sps.rankdata(absd, axis=1, nan_policy="omit"))
        observed = (ranks * (ds > 0)).sum(axis=1)
        signs = (np.arange(2**n)[:, None] >> np.arange(n)[None, :]) & 1  # (2^n, n)
        null = signs @ ranks.T  # (2^n, rows)
        gamma = np.abs(1e-14 * observed)
        less = (null <= observed + gamma).mean(axis=0)
        greater = (null >= observed - gamma).mean(axis=0)
        p[small] = np.clip(2 * np.minimum(less, greater), 0, 1)
    return p


def raters_needed_for_power(
    mos_a: float,
    mos_b: float,
    power: float = 0.8,
    n_images: int = 10,
    *,
    max_raters: int = 60,
    alpha: float = 0.05,
    n_sims: int = 200,
    population: Population = PLANNING_POPULATION,
    seed: int = 0,
) -> PlanResult:
    """Smallest number of raters for which :func:`power_for_difference` reaches ``power``.

    Evaluates every number of raters from 2 to ``max_raters`` on common random numbers and returns
    the first one whose simulated power is at least ``power`` (with its curve).
    """
    curve = power_for_difference(
        mos_a, mos_b, np.arange(2, max_raters + 1), n_images, alpha=alpha, n_sims=n_sims,
        population=population, seed=seed,
    )  # fmt: skip
    ok = curve.loc[curve["power"] >= power, "n_raters"]
    return PlanResult(int(ok.iloc[0]) if len(ok) else None, curve)
