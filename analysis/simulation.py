"""Simulated MOS studies with known truth: the latent-score model the planners and the tests draw from.

The simulator draws every rating from the latent-score model of ITU-T P.910 (2022) Annex E /
SUREAL's MLE_CO, rounded to the 1..5 scale::

    z = mu_stimulus + eta_image + Delta_rater + upsilon_rater * eps,   eps ~ N(0, 1)
    score = clip(round(z), 1, 5)

``Delta_rater ~ N(0, bias_sd^2)`` is the rater's bias, ``upsilon_rater ~ U(lo, hi)`` their
inconsistency and ``eta_image ~ N(0, image_sd^2)`` an image (content) effect shared by all methods of
an image. Rounding and clipping move the expected score away from ``mu``; so the latent location of
each (dataset, method) is solved for such that the expected *observed* score, averaged over the
population of raters, images and noise, equals the requested true MOS. That expected score is the
"true MOS" that intervals and tests are judged against. The population is one :class:`Population`
value; :mod:`analysis.planning` plans studies on it.

References
----------
1. ITU-T P.910 (2022). Subjective video quality assessment methods for multimedia applications,
   Annex E (subject bias and inconsistency model).
2. Li, Z., Bampis, C. G. (2017). Recover subjective quality scores from noisy measurements. Data
   Compression Conference, 52-61.
3. Ledig, C. et al. (2017). CVPR, section 3.3 (26 raters; 12/12/9 methods on Set5/Set14/BSD100).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special

from analysis._frames import RATING_COLUMNS

__all__ = ["Population", "SimulationTruth", "expected_score", "latent_location", "simulate_study"]

SCALE_MIN, SCALE_MAX = 1, 5
_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(24)


@dataclass(frozen=True)
class SimulationTruth:
    """What :func:`simulate_study` planted.

    Attributes
    ----------
    mos : pandas.DataFrame
        ``dataset, method, true_mos, latent``: the requested population MOS and its latent location.
    stimuli : pandas.DataFrame
        ``dataset, image, method, latent, true_mos``: per stimulus, the latent location including the
        image effect and the expected score over the rater population.
    raters : pandas.DataFrame
        ``rater_id, bias, inconsistency, random``: planted bias and noise sd; ``random`` raters
        ignore the stimulus and answer uniformly on 1..5.
    """

    mos: pd.DataFrame
    stimuli: pd.DataFrame
    raters: pd.DataFrame


@dataclass(frozen=True)
class Population:
    """The raters and images a simulated study draws from, on the latent scale.

    Attributes
    ----------
    bias_sd : float
        Standard deviation of the rater biases ``Delta``.
    inconsistency : float or (low, high)
        Each rater's noise sd ``upsilon`` is drawn uniformly from this range (a float: all equal).
    image_sd : float
        Standard deviation of the image effect shared by all methods of an image.
    rater_method_sd, image_method_sd : float
        Standard deviations of a rater x method preference (one draw per rater and (dataset,
        method)) and of an image x method effect (one per stimulus). They leave every method's
        population MOS as requested and make the methods' differences vary between raters and
        between images, which tests of those differences must allow for. The planners' crossed
        simulations have neither.
    """

    bias_sd: float = 0.3
    inconsistency: float | tuple[float, float] = (0.5, 1.0)
    image_sd: float = 0.0
    rater_method_sd: float = 0.0
    image_method_sd: float = 0.0

    def __post_init__(self) -> None:
        self.inconsistency_range  # noqa: B018 - validates

    @property
    def inconsistency_range(self) -> tuple[float, float]:
        """``(low, high)`` of the uniform inconsistency distribution."""
        return _inconsistency_range(self.inconsistency)

    @property
    def rater_sd(self) -> float:
        """Spread of a rater's offset on one method: bias and rater x method preference together."""
        return float(np.hypot(self.bias_sd, self.rater_method_sd))

    @property
    def stimulus_sd(self) -> float:
        """Spread of a stimulus around its method's location: image and image x method effects."""
        return float(np.hypot(self.image_sd, self.image_method_sd))


def _inconsistency_nodes(inconsistency: float | tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Quadrature nodes and weights of the uniform inconsistency distribution."""
    lo, hi = _inconsistency_range(inconsistency)
    if hi == lo:
        return np.array([lo]), np.array([1.0])
    nodes = lo + (hi - lo) * (_GL_NODES + 1.0) / 2.0
    return nodes, _GL_WEIGHTS / 2.0


def _inconsistency_range(inconsistency: float | tuple[float, float]) -> tuple[float, float]:
    if np.isscalar(inconsistency):
        lo = hi = float(inconsistency)
    else:
        lo, hi = (float(v) for v in inconsistency)
    if not 0 < lo <= hi:
        raise ValueError(f"inconsistency must be positive with low <= high, got {inconsistency}")
    return lo, hi


def expected_score(latent: np.ndarray | float, population: Population = Population()) -> np.ndarray:
    """Expected observed score ``E[clip(round(z), 1, 5)]`` of a latent location over the population.

    Parameters
    ----------
    latent : array_like
        Latent location ``mu`` (the stimulus' quality before rater and image effects).
    population : Population
        Use ``image_sd=0`` (and ``image_method_sd=0``) for the expected score of one given image.

    Returns
    -------
    numpy.ndarray
        ``1 + sum_{k=1}^{4} P(z > k + 1/2)``, where ``z | upsilon ~ N(mu, rater_sd^2 + stimulus_sd^2
        + upsilon^2)`` and ``upsilon`` is integrated out by Gauss-Legendre quadrature.
    """
    return _expected_score(latent, population.rater_sd, population.inconsistency_range, population.stimulus_sd)


def _expected_score(latent, bias_sd: float, inconsistency: tuple[float, float], image_sd: float) -> np.ndarray:
    mu = np.asarray(latent, dtype=float)
    nodes, weights = _inconsistency_nodes(inconsistency)
    sd = np.sqrt(bias_sd**2 + image_sd**2 + nodes**2)  # (Q,)
    thresholds = np.arange(SCALE_MIN, SCALE_MAX) + 0.5  # 1.5 .. 4.5
    z = (mu[..., None, None] - thresholds[:, None]) / sd  # (..., 4, Q)
    return SCALE_MIN + (special.ndtr(z) * weights).sum(axis=(-1, -2))


def latent_location(true_mos: np.ndarray | float, population: Population = Population()) -> np.ndarray:
    """Inverse of :func:`expected_score`: the latent location whose expected score is ``true_mos``.

    Targets are clipped into ``[1.001, 4.999]``: a population MOS of exactly 1 or 5 needs an
    infinite latent location. Solved by bisection (the expected score is strictly increasing).
    """
    target = np.clip(np.asarray(true_mos, dtype=float), SCALE_MIN + 1e-3, SCALE_MAX - 1e-3)
    lo = np.full(target.shape, -20.0)
    hi = np.full(target.shape, 25.0)
    for _ in range(80):
        mid = (lo + hi) / 2.0
        too_high = expected_score(mid, population) > target
        hi = np.where(too_high, mid, hi)
        lo = np.where(too_high, lo, mid)
    return (lo + hi) / 2.0


def targets_frame(true_mos: pd.DataFrame | Mapping) -> pd.DataFrame:
    """``dataset, method, true_mos`` (and ``image`` when given per image) from the accepted forms."""
    if isinstance(true_mos, pd.DataFrame):
        frame = true_mos.copy()
        value = "true_mos" if "true_mos" in frame.columns else "mos"
        if value not in frame.columns or not {"dataset", "method"} <= set(frame.columns):
            raise ValueError("true_mos frame needs columns dataset, method and mos (or true_mos)")
        keep = ["dataset", "method", *(["image"] if "image" in frame.columns else []), value]
        frame = frame[keep].rename(columns={value: "true_mos"})
    elif isinstance(true_mos, Mapping):
        rows = [(d, m, float(v)) for d, methods in true_mos.items() for m, v in methods.items()]
        frame = pd.DataFrame(rows, columns=["dataset", "method", "true_mos"])
    else:
        raise TypeError("true_mos must be a DataFrame or a {dataset: {method: mos}} mapping")
    if frame.duplicated([c for c in ("dataset", "image", "method") if c in frame.columns]).any():
        raise ValueError("true_mos has duplicate rows")
    return frame.reset_index(drop=True)


def _image_names(n: int) -> list[str]:
    return [f"img_{k:03d}" for k in range(1, n + 1)]


def simulate_study(
    true_mos: pd.DataFrame | Mapping,
    n_raters: int = 26,
    n_images: int | Mapping[str, int] = 10,
    *,
    population: Population | None = None,
    seed: int = 0,
    n_repeats: int = 0,
    n_gold: int = 0,
    n_random_raters: int = 0,
    rating_fraction: float = 1.0,
    start: str = "2017-01-02T09:00:00Z",
    return_truth: bool = False,
    **population_fields,
) -> pd.DataFrame | tuple[pd.DataFrame, SimulationTruth]:
    """Simulate the ratings of a MOS study with known truth.

    Parameters
    ----------
    true_mos : pandas.DataFrame or mapping
        Population MOS per (dataset, method): a frame with ``dataset, method, mos`` (or
        ``true_mos``) or ``{dataset: {method: mos}}``. A frame with an ``image`` column gives the
        true MOS per stimulus; then ``n_images`` and the image effects are ignored.
    n_raters : int
        Raters; each rates every stimulus (the paper's fully crossed design) unless
        ``rating_fraction < 1``.
    n_images : int or mapping
        Images per dataset (named ``img_001``...), or ``{dataset: n}``.
    population : Population, optional
        The raters and images drawn from; default ``Population()``.
    seed : int
        Seed; the same arguments give the same frame.
    n_repeats : int
        Test items shown twice to each rater (the later presentation gets ``kind == "repeat"``).
    n_gold : int
        Gold items per rater, shown first as in the paper's calibration: dataset "calibration",
        alternately ``nearest`` (``expected_score`` 1) and ``hr`` (5), latent location equal to
        the expected score.
    n_random_raters : int
        The last this many raters answer uniformly at random on 1..5 (spammers).
    rating_fraction : float
        Share of the stimuli each rater rates (a random subset); 1 is the crossed design.
    start : str
        Timestamp of the first session; a rater's session starts one hour after the previous one.
    return_truth : bool
        Also return a :class:`SimulationTruth`.
    **population_fields
        The fields of :class:`Population` as keywords (``bias_sd=0.4, image_sd=0.3``), instead of
        ``population``: the benchmarks and tests outside :mod:`analysis` call it so.

    Returns
    -------
    pandas.DataFrame or (pandas.DataFrame, SimulationTruth)
        Ratings with ``rater_id, dataset, image, method, score, kind, expected_score, response_ms,
        created_at, position``, sorted by rater and position.
    """
    if n_raters < 1 or not 0 <= n_random_raters <= n_raters:
        raise ValueError("need n_raters >= 1 and 0 <= n_random_raters <= n_raters")
    if not 0 < rating_fraction <= 1:
        raise ValueError("rating_fraction must be in (0, 1]")
    if population is not None and population_fields:
        raise TypeError("give population or its fields as keywords, not both")
    pop = population if population is not None else Population(**population_fields)
    one_image = dataclasses.replace(pop, image_sd=0.0, image_method_sd=0.0)
    lo, hi = pop.inconsistency_range
    rng = np.random.default_rng(seed)
    targets = targets_frame(true_mos)

    # Stimuli and their latent locations.
    if "image" in targets.columns:
        stim = targets.copy()
        stim["latent"] = latent_location(stim["true_mos"].to_numpy(), one_image)
        method_truth = stim.groupby(["dataset", "method"], sort=False)["true_mos"].mean().reset_index()
        method_truth["latent"] = np.nan
    else:
        method_truth = targets.copy()
        # The interactions widen the populations the latent locations are calibrated over.
        method_truth["latent"] = latent_location(targets["true_mos"].to_numpy(), pop)
        parts = []
        for dataset, group in method_truth.groupby("dataset", sort=False):
            k = n_images[dataset] if isinstance(n_images, Mapping) else n_images
            images = _image_names(int(k))
            eta = rng.normal(0.0, pop.image_sd, size=len(images)) if pop.image_sd > 0 else np.zeros(len(images))
            grid = pd.MultiIndex.from_product([images, group["method"]], names=["image", "method"])
            grid = grid.to_frame(index=False)
            grid["dataset"] = dataset
            grid = grid.merge(group[["method", "latent"]], on="method")
            grid["latent"] = grid["latent"] + np.repeat(eta, len(group))
            parts.append(grid)
        stim = pd.concat(parts, ignore_index=True)
        # Drawn only when asked for, so that the other draws of a seed stay as they were.
        if pop.image_method_sd > 0:
            stim["latent"] += rng.normal(0.0, pop.image_method_sd, len(stim))
        stim["true_mos"] = expected_score(stim["latent"].to_numpy(), one_image)
    stim = stim[["dataset", "image", "method", "latent", "true_mos"]].reset_index(drop=True)

    # Raters.
    rater_ids = np.array([f"r{k:03d}" for k in range(1, n_raters + 1)], dtype=object)
    bias = rng.normal(0.0, pop.bias_sd, n_raters)
    noise = rng.uniform(lo, hi, n_raters)
    random_rater = np.zeros(n_raters, dtype=bool)
    if n_random_raters:
        random_rater[-n_random_raters:] = True
    offset = None
    if pop.rater_method_sd > 0:
        cell = stim.groupby(["dataset", "method"], sort=False).ngroup().to_numpy()
        offset = rng.normal(0.0, pop.rater_method_sd, (n_raters, cell.max() + 1))[:, cell]
    ratings = _present(stim, rng, rater_ids, bias, noise, random_rater, n_repeats, n_gold, rating_fraction, start,
                       offset)  # fmt: skip
    if not return_truth:
        return ratings
    raters = pd.DataFrame({"rater_id": rater_ids, "bias": bias, "inconsistency": noise, "random": random_rater})
    return ratings, SimulationTruth(mos=method_truth, stimuli=stim, raters=raters)


def _present(
    stim: pd.DataFrame,
    rng: np.random.Generator,
    rater_ids: np.ndarray,
    bias: np.ndarray,
    noise: np.ndarray,
    random_rater: np.ndarray,
    n_repeats: int,
    n_gold: int,
    rating_fraction: float,
    start: str,
    offset: np.ndarray | None = None,
) -> pd.DataFrame:
    """Every rater's session (gold items first, then test and repeat items in random order), vectorised.

    ``offset`` (raters, stimuli), when given, is added to each rating's latent score.
    """
    n_raters, n_stim = len(rater_ids), len(stim)
    if rating_fraction < 1:
        shown = rng.random((n_raters, n_stim)) < rating_fraction
    else:
        shown = np.ones((n_raters, n_stim), bool)
    empty = ~shown.any(axis=1)
    shown[empty, rng.integers(0, n_stim, int(empty.sum()))] = True
    t_rater, t_stim = np.nonzero(shown)
    # Repeats: the first n_repeats of a random ordering of each rater's shown stimuli.
    keys = np.where(shown, rng.random((n_raters, n_stim)), np.inf)
    picks = np.argsort(keys, axis=1)[:, : min(n_repeats, n_stim)]
    valid = np.isfinite(np.take_along_axis(keys, picks, axis=1))
    r_rater = np.repeat(np.arange(n_raters), picks.shape[1])[valid.ravel()]
    r_stim = picks.ravel()[valid.ravel()]
    rater = np.concatenate([t_rater, r_rater])
    item = np.concatenate([t_stim, r_stim])
    z = stim["latent"].to_numpy()[item] + bias[rater] + noise[rater] * rng.standard_normal(item.size)
    if offset is not None:
        z += offset[rater, item]
    score = np.clip(np.rint(z), SCALE_MIN, SCALE_MAX).astype(int)
    is_random = random_rater[rater]
    score[is_random] = rng.integers(SCALE_MIN, SCALE_MAX + 1, int(is_random.sum()))
    # Random presentation order within each rater; the later of two presentations is the repeat.
    order = np.lexsort((rng.random(item.size), rater))
    rater, item, score = rater[order], item[order], score[order]
    repeat = pd.DataFrame({"r": rater, "i": item}).duplicated().to_numpy()
    frame = pd.DataFrame(
        {
            "rater_id": rater_ids[rater],
            "dataset": stim["dataset"].to_numpy()[item],
            "image": stim["image"].to_numpy()[item],
            "method": stim["method"].to_numpy()[item],
            "score": score,
            "kind": np.where(repeat, "repeat", "test"),
            "expected_score": np.nan,
            "_r": rater,
        }
    )
    if n_gold:
        g_rater = np.repeat(np.arange(n_raters), n_gold)
        g_k = np.tile(np.arange(n_gold), n_raters)
        expected = np.where(g_k % 2 == 0, 1, 5)
        gz = expected + bias[g_rater] + noise[g_rater] * rng.standard_normal(g_rater.size)
        g_score = np.clip(np.rint(gz), SCALE_MIN, SCALE_MAX).astype(int)
        g_random = random_rater[g_rater]
        g_score[g_random] = rng.integers(SCALE_MIN, SCALE_MAX + 1, int(g_random.sum()))
        gold = pd.DataFrame(
            {
                "rater_id": rater_ids[g_rater],
                "dataset": "calibration",
                "image": np.array([f"gold_{k // 2 + 1:03d}" for k in range(n_gold)], dtype=object)[g_k],
                "method": np.where(expected == 1, "nearest", "hr"),
                "score": g_score,
                "kind": "gold",
                "expected_score": expected.astype(float),
                "_r": g_rater,
            }
        )
        frame = pd.concat([gold, frame], ignore_index=True)
        frame = frame.iloc[np.argsort(frame["_r"].to_numpy(), kind="stable")].reset_index(drop=True)
    r = frame.pop("_r").to_numpy()
    frame["position"] = frame.groupby(r).cumcount().to_numpy() + 1
    response = rng.lognormal(np.log(3500.0), 0.4, len(frame))
    elapsed = pd.Series(response).groupby(r).cumsum().to_numpy()
    frame["response_ms"] = response
    frame["created_at"] = (
        pd.Timestamp(start) + pd.to_timedelta(r, unit="h") + pd.to_timedelta(elapsed, unit="ms")
    )
    return frame[list(RATING_COLUMNS)]


def crossed_scores(
    rng: np.random.Generator,
    latent: np.ndarray,
    n_sims: int,
    n_raters: int,
    population: Population,
    image_effect: np.ndarray,
) -> np.ndarray:
    """Scores of shape (n_sims, n_raters, n_stimuli) from the latent model, every rater rating every
    stimulus (the planners' studies); ``image_effect`` (n_sims, n_stimuli) is drawn by the caller."""
    lo, hi = population.inconsistency_range
    bias = rng.normal(0.0, population.bias_sd, (n_sims, n_raters, 1))
    noise = rng.uniform(lo, hi, (n_sims, n_raters, 1))
    eps = rng.standard_normal((n_sims, n_raters, latent.size))
    z = latent[None, None, :] + image_effect[:, None, :] + bias + noise * eps
    return np.clip(np.rint(z), SCALE_MIN, SCALE_MAX)
