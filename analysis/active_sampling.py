"""Choosing the next pairs to judge: the pair whose answer is expected to teach the scale most.

ASAP's idea (Mikhailiuk et al., ICPR 2020), in a small closed form: keep a Gaussian posterior of
each image's Thurstone scores (a N(0, prior_sd^2) prior on every score, the judgments so far, Laplace
approximation at the posterior mode), and ask for the pair (i, j) that is expected to help most.
Two criteria: the expected drop of the scores' total posterior variance (the default, since the
report's product is intervals), and ASAP's expected information gain. For one judgment with
``d = q_i - q_j ~ N(mu, s^2)`` and ``P(i preferred) = Phi(d / sigma)``, the information gain is

    EIG = H(E[p]) - E[H(p)],   E[p] = Phi(mu / sqrt(sigma^2 + s^2)),

where H is the binary entropy; the second term is a Gauss-Hermite average over d. Pairs already
decided (large |mu|) or already certain (small s) gain little; close, uncertain pairs gain most.
Batch choice (several raters asking at once) takes the best pairs of different images first, so
one image does not absorb a whole batch before its posterior is updated.

Django-free: the study layer passes win matrices and gets (image, method_i, method_j) back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy import special

from analysis.pairwise import JOD_SIGMA, link_terms

PRIOR_SD = 2.0  # JOD: SR methods of one image rarely lie more than a few JOD apart
_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(24)  # probabilists' Hermite: E over N(0, 1)

CRITERIA = ("variance", "information")

__all__ = ["CRITERIA", "PRIOR_SD", "choose_pairs", "expected_information_gain", "expected_variance_reduction",
           "posterior"]


def posterior(wins: np.ndarray, prior_sd: float = PRIOR_SD, tol: float = 1e-9) -> tuple[np.ndarray, np.ndarray]:
    """Posterior mode and Laplace covariance of the Thurstone scores (JOD) given ``wins[i, j]``.

    The Gaussian prior makes the posterior proper with any judgments at all (none: mean 0,
    covariance prior_sd^2 I), so there is no component or unanimity to special-case here.
    """
    w = np.array(wins, float)
    np.fill_diagonal(w, 0.0)
    m = w.shape[0]
    precision0 = np.eye(m) / prior_sd**2
    q = np.zeros(m)
    for _ in range(100):
        d = q[:, None] - q[None, :]
        _, slope, curv = link_terms("thurstone", d)
        grad = (w * slope).sum(axis=1) - (w * slope).sum(axis=0) - precision0 @ q
        c = w * curv
        c = c + c.T
        info = np.diag(c.sum(axis=1)) - c + precision0
        step = np.linalg.solve(info, grad)
        q = q + step
        if np.max(np.abs(step)) < tol:
            break
    d = q[:, None] - q[None, :]
    _, _, curv = link_terms("thurstone", d)
    c = w * curv
    c = c + c.T
    info = np.diag(c.sum(axis=1)) - c + precision0
    return q, np.linalg.inv(info)


def _entropy(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-15, 1 - 1e-15)
    return -(p * np.log(p) + (1 - p) * np.log1p(-p))


def expected_information_gain(mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """EIG (nats) of one judgment of each pair ``[i, j]`` under the posterior ``N(mean, cov)``
    (symmetric, zero diagonal)."""
    mu = mean[:, None] - mean[None, :]
    var = np.clip(np.diag(cov)[:, None] + np.diag(cov)[None, :] - 2 * cov, 0.0, None)
    marginal = special.ndtr(mu / np.sqrt(JOD_SIGMA**2 + var))
    d = mu[..., None] + np.sqrt(var)[..., None] * _NODES
    conditional = _entropy(special.ndtr(d / JOD_SIGMA)) @ _WEIGHTS / _WEIGHTS.sum()
    gain = _entropy(marginal) - conditional
    np.fill_diagonal(gain, 0.0)
    return np.clip(gain, 0.0, None)


def expected_variance_reduction(mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Expected drop of the posterior's total variance (sum of the scores' variances, JOD^2) from one
    judgment of each pair ``[i, j]``: with ``u = e_i - e_j`` and the judgment's expected Fisher
    information ``c`` at the current difference, ``c |cov u|^2 / (1 + c u' cov u)`` (a rank-one
    update of the Laplace posterior)."""
    mu = mean[:, None] - mean[None, :]
    var = np.clip(np.diag(cov)[:, None] + np.diag(cov)[None, :] - 2 * cov, 0.0, None)
    d = (mu[..., None] + np.sqrt(var)[..., None] * _NODES) / JOD_SIGMA
    p = np.clip(special.ndtr(d), 1e-15, 1 - 1e-15)
    info = (np.exp(-d**2) / (2 * np.pi) / (p * (1 - p))) @ _WEIGHTS / _WEIGHTS.sum() / JOD_SIGMA**2
    spread = cov[:, None, :] - cov[None, :, :]  # cov u for u = e_i - e_j, as [i, j, :]
    gain = info * np.sum(spread**2, axis=2) / (1.0 + info * var)
    np.fill_diagonal(gain, 0.0)
    return gain


def choose_pairs(wins_by_image: Mapping[object, np.ndarray], methods: Sequence[str], count: int = 1, *,
                 prior_sd: float = PRIOR_SD, exclude: set | None = None, criterion: str = "variance") -> list[tuple[object, str, str]]:
    """The ``count`` most informative (image, method_i, method_j) to ask next.

    wins_by_image : image key -> win matrix over ``methods`` (zeros for an image not judged yet).
    exclude : (image, method_i, method_j) not to propose (e.g. what this rater already judged);
        either order of the methods excludes the pair.
    criterion : "variance" (default: the largest expected drop of the scores' total posterior
        variance, what the report's intervals need) or "information" (ASAP's expected information
        gain, which favours pairs whose outcome is uncertain; measured slower to narrow the widest
        interval, see BENCHMARKS.md).
    Ties (e.g. at the start, all pairs equal) go to the first image and pair in the given order, so
    the choice is reproducible.
    """
    if criterion not in CRITERIA:
        raise ValueError(f"unknown criterion {criterion!r}: use one of {CRITERIA}")
    exclude = exclude or set()
    blocked = {(img, *sorted((a, b))) for img, a, b in exclude}
    candidates = []
    for order, (image, wins) in enumerate(wins_by_image.items()):
        mean, cov = posterior(wins, prior_sd)
        gain = (expected_information_gain if criterion == "information" else expected_variance_reduction)(mean, cov)
        for i in range(len(methods)):
            for j in range(i + 1, len(methods)):
                if (image, *sorted((methods[i], methods[j]))) in blocked:
                    continue
                candidates.append((-gain[i, j], order, i, j, image))
    candidates.sort(key=lambda c: c[:4])
    chosen, used_images = [], set()
    for rounds in range(2):  # first one pair per image, then the rest by gain
        for c in candidates:
            if len(chosen) == count:
                return chosen
            key = (c[4], methods[c[2]], methods[c[3]])
            if key in chosen or (rounds == 0 and c[4] in used_images):
                continue
            chosen.append(key)
            used_images.add(c[4])
    return chosen
