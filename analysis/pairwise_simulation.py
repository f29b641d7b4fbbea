"""Simulated paired-comparison studies with a planted truth: for calibration tests and for planning.

The generating model is the one the scales assume, plus the heterogeneity real studies have: each
method has a true quality in JOD; each image shifts it (image x method effect, so the pooled scale
is an average over images of the kind); each rater shifts it too (rater x method effect: taste), and
each judgment adds Thurstone's noise (sigma = 1.4826, so a 1 JOD difference is preferred 75% of the
time by a typical rater on a typical image).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import ndtr

from analysis.pairwise import JOD_SIGMA

__all__ = ["PairedPopulation", "PairedTruth", "simulate_judgments"]


@dataclass(frozen=True)
class PairedPopulation:
    """What varies in a simulated paired study, in JOD.

    quality : the methods' true mean qualities (their differences are what a scale estimates).
    image_sd : spread of each method's quality over images (image x method).
    rater_sd : spread of each method's quality over raters (rater x method).
    """

    quality: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0)
    image_sd: float = 0.3
    rater_sd: float = 0.3


@dataclass(frozen=True)
class PairedTruth:
    """The planted values of one simulated study, and what a scale of them converges to.

    A JOD is defined by the spread of preferences in the population judged: with rater and image
    effects, a pooled Thurstone scale of infinitely many raters and images converges to the planted
    differences times ``sigma / sqrt(sigma^2 + 2 image_sd^2 + 2 rater_sd^2)`` (equal effect variances
    keep the marginal preferences exactly Thurstone Case V), and a per-image scale to the image's
    differences times ``sigma / sqrt(sigma^2 + 2 rater_sd^2)``. Those are the targets (``*_jod``).
    """

    methods: tuple[str, ...]
    quality: np.ndarray  # planted mean qualities over the population of images and raters
    image_quality: np.ndarray  # [image, method]: planted qualities of the images drawn
    population: PairedPopulation

    @property
    def pooled_jod(self) -> np.ndarray:
        """What the pooled scale estimates (mean zero)."""
        p = self.population
        shrink = JOD_SIGMA / np.sqrt(JOD_SIGMA**2 + 2 * p.image_sd**2 + 2 * p.rater_sd**2)
        return (self.quality - self.quality.mean()) * shrink

    @property
    def image_jod(self) -> np.ndarray:
        """What each per-image scale estimates, ``[image, method]`` (mean zero per image)."""
        shrink = JOD_SIGMA / np.sqrt(JOD_SIGMA**2 + 2 * self.population.rater_sd**2)
        return (self.image_quality - self.image_quality.mean(axis=1, keepdims=True)) * shrink


def _pairs_for(design: str, n_methods: int, images: int, judgments_per_rater: int, rater: int,
               rng: np.random.Generator) -> list[tuple[int, int, int]]:
    pairs = list(itertools.combinations(range(n_methods), 2))
    if design == "full":
        return [(img, a, b) for img in range(images) for a, b in pairs]
    if design == "balanced":
        cells = [(img, a, b) for img in range(images) for a, b in pairs]
        # Each rater starts where the previous stopped, so over raters every cell gets the same count.
        start = (rater * judgments_per_rater) % len(cells)
        return [cells[(start + k) % len(cells)] for k in range(judgments_per_rater)]
    if design == "random":
        cells = [(img, a, b) for img in range(images) for a, b in pairs]
        take = rng.choice(len(cells), size=judgments_per_rater, replace=judgments_per_rater > len(cells))
        return [cells[k] for k in take]
    raise ValueError(f"unknown design {design!r}: use 'full', 'balanced' or 'random'")


def simulate_judgments(raters: int, images: int, *, population: PairedPopulation = PairedPopulation(),
                       design: str = "full", judgments_per_rater: int | None = None, dataset: str = "Set5",
                       seed: int | None = 0) -> tuple[pd.DataFrame, PairedTruth]:
    """One simulated study: judgments in the platform's tidy format, and the planted truth.

    design : "full" (every rater judges every pair of every image), "balanced" (each rater
        ``judgments_per_rater`` cells, spread evenly over raters) or "random" (drawn at random).
    Sides are drawn at random per judgment, as the rater UI does.
    """
    rng = np.random.default_rng(seed)
    quality = np.asarray(population.quality, float)
    m = quality.size
    methods = tuple(f"m{k}" for k in range(m))
    image_quality = quality + rng.normal(0.0, population.image_sd, size=(images, m))
    per_rater = judgments_per_rater or images * m * (m - 1) // 2
    rows = []
    for r in range(raters):
        taste = rng.normal(0.0, population.rater_sd, size=m)
        for img, a, b in _pairs_for(design, m, images, per_rater, r, rng):
            diff = (image_quality[img, a] + taste[a]) - (image_quality[img, b] + taste[b])
            a_wins = rng.random() < ndtr(diff / JOD_SIGMA)
            left, right = (a, b) if rng.random() < 0.5 else (b, a)
            rows.append((f"r{r:03d}", dataset, f"img{img:03d}", methods[left], methods[right],
                         methods[a] if a_wins else methods[b]))
    frame = pd.DataFrame(rows, columns=["rater_id", "dataset", "image", "method_a", "method_b", "choice"])
    return frame, PairedTruth(methods, quality, image_quality, population)

