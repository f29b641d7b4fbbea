"""How many paired judgments a study needs: full, balanced and active designs on simulated studies.

A stream of judgments is simulated from a planted truth (:mod:`analysis.pairwise_simulation`'s
model: image and rater effects, Thurstone noise), chosen by one of three designs:

- "balanced": every (image, pair) cell once per round, rounds repeated, in random order within a
  round - what the study file's "full" and "balanced" designs give at equal numbers of judgments;
- "random": cells drawn independently at random;
- "active": the most informative cells given the judgments so far (:func:`analysis.active_sampling.choose_pairs`),
  asked in batches as raters would arrive.

Every ``check`` judgments the per-image scales are fitted (:func:`analysis.pairwise.fit_scale`, the
report's scale) and the widest 95% Fisher interval half-width of a score is compared with the target.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

from analysis.active_sampling import choose_pairs
from analysis.pairwise import JOD_SIGMA, fit_scale
from analysis.pairwise_simulation import PairedPopulation

DESIGNS = ("balanced", "random", "active")
Z95 = 1.959964

__all__ = ["DESIGNS", "PlanResult", "judgments_to_target"]


@dataclass(frozen=True)
class PlanResult:
    design: str
    judgments: int | None  # None: not reached within the budget
    half_width: float  # widest 95% half-width when stopped (JOD)
    rmse: float  # of the per-image scores against the image's planted JOD when stopped


def _widest_half_width(wins: np.ndarray) -> float:
    return max(Z95 * float(np.max(fit_scale(w, "thurstone").se)) for w in wins)


def judgments_to_target(design: str, *, population: PairedPopulation = PairedPopulation(), images: int = 5,
                        raters: int = 30, target: float = 0.3, budget: int = 20_000, check: int = 100,
                        batch: int = 10, seed: int = 0, criterion: str = "variance") -> PlanResult:
    """Judgments until every per-image score's 95% interval is at most ``target`` JOD wide each side."""
    if design not in DESIGNS:
        raise ValueError(f"unknown design {design!r}: use one of {DESIGNS}")
    rng = np.random.default_rng(seed)
    quality = np.asarray(population.quality, float)
    m = quality.size
    methods = [f"m{k}" for k in range(m)]
    image_quality = quality + rng.normal(0.0, population.image_sd, size=(images, m))
    taste = rng.normal(0.0, population.rater_sd, size=(raters, m))
    cells = [(img, a, b) for img in range(images) for a, b in itertools.combinations(range(m), 2)]
    wins = np.zeros((images, m, m))
    queue: list[tuple[int, int, int]] = []
    done = 0
    while done < budget:
        if not queue:
            if design == "balanced":
                queue = [cells[k] for k in rng.permutation(len(cells))]
            elif design == "random":
                queue = [cells[k] for k in rng.integers(0, len(cells), size=batch)]
            else:
                picked = choose_pairs({img: wins[img] for img in range(images)}, methods, batch, criterion=criterion)
                queue = [(img, methods.index(a), methods.index(b)) for img, a, b in picked]
        img, a, b = queue.pop(0)
        rater = done % raters
        diff = (image_quality[img, a] + taste[rater, a]) - (image_quality[img, b] + taste[rater, b])
        if rng.random() < ndtr(diff / JOD_SIGMA):
            wins[img, a, b] += 1
        else:
            wins[img, b, a] += 1
        done += 1
        if done % check == 0 and np.all((wins + np.swapaxes(wins, 1, 2)).sum(axis=(1, 2)) > 0):
            width = _widest_half_width(wins)
            if width <= target:
                return PlanResult(design, done, width, _rmse(wins, image_quality, population))
    return PlanResult(design, None, _widest_half_width(wins), _rmse(wins, image_quality, population))


def _rmse(wins: np.ndarray, image_quality: np.ndarray, population: PairedPopulation) -> float:
    shrink = JOD_SIGMA / np.sqrt(JOD_SIGMA**2 + 2 * population.rater_sd**2)
    errors = []
    for w, q in zip(wins, image_quality, strict=True):
        truth = (q - q.mean()) * shrink
        errors.append(fit_scale(w, "thurstone").scores - truth)
    return float(np.sqrt(np.mean(np.square(errors))))
