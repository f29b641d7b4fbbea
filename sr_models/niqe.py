"""NIQE, the "completely blind" naturalness measure of Mittal et al. (2013), as its MATLAB release computes it.

NIQE fits a multivariate Gaussian (MVG) to natural-scene-statistics features of an image's 96x96
blocks and reports the distance of that fit from an MVG fitted once to pristine natural images: lower
is more natural. No reference image is needed. Every step below follows the authors' MATLAB release
(``niqe_release.zip``: ``computequality.m``, ``computefeature.m``, ``estimateaggdparam.m``), because
each one moves the second decimal:

1. RGB to gray with MATLAB's ``rgb2gray`` on ``uint8`` (weights 0.298936021293775, 0.587043074451121,
   0.114020904255103; rounded half away from zero to ``uint8``), then ``double``. A grayscale image is
   used as it is. (BasicSR's port uses the Y of ``rgb2ycbcr`` instead, a different image.)
2. Crop at the bottom and right to whole 96x96 blocks (rows and columns beyond the last whole block
   are dropped; the release uses no overlap).
3. MSCN coefficients ``(I - mu) / (sigma + 1)``, where ``mu`` and ``sigma`` are local mean and standard
   deviation under ``fspecial('gaussian', 7, 7/6)`` filtered with ``imfilter(..., 'replicate')``,
   and ``sigma = sqrt(abs(E[I^2] - mu^2))``.
4. Per block, 18 features: the asymmetric generalised Gaussian (AGGD) fit of the coefficients
   (``alpha``, mean of ``beta_l`` and ``beta_r``) and, for the products with the neighbour in four
   directions (``circshift`` by [0 1], [1 0], [1 1], [1 -1], wrapping *inside the block*), ``alpha``,
   the AGGD mean, ``beta_l`` and ``beta_r``. ``alpha`` is the point of the grid ``0.2:0.001:10`` whose
   ratio ``Gamma(2/a)^2 / (Gamma(1/a) Gamma(3/a))`` is nearest the sample's (first one on a tie).
5. The same at half size: ``imresize(I, 0.5)`` (bicubic with antialiasing, in double) with 48x48
   blocks, so each block has 36 features.
6. ``nanmean`` of the features and ``nancov`` (rows with any NaN dropped, normalised by n - 1); a block
   with no negative (or no positive) coefficient gets NaN scale parameters, as MATLAB's ``mean([])``.
7. ``sqrt((mu_p - mu) pinv((cov_p + cov) / 2) (mu_p - mu)')`` with MATLAB's ``pinv`` tolerance
   ``max(size) * norm * eps``.

The pristine model ``mu_prisparam`` (1x36) and ``cov_prisparam`` (36x36) is the release's
``modelparameters.mat``; the numbers ship in ``sr_models/data/niqe_pris_params.npz``, taken from
BasicSR's source distribution (see ``sr_models/data/PROVENANCE.md``).

References
----------
.. [1] A. Mittal, R. Soundararajan, A. C. Bovik, "Making a 'Completely Blind' Image Quality
       Analyzer", IEEE Signal Processing Letters 20(3), 2013.
.. [2] A. Mittal, MATLAB release ``niqe_release.zip`` (LIVE, UT Austin): ``computequality.m``,
       ``computefeature.m``, ``estimateaggdparam.m``, ``modelparameters.mat``.
.. [3] MathWorks, ``rgb2gray``, ``fspecial``, ``imfilter``, ``nancov``, ``pinv``.
"""

from __future__ import annotations

import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import correlate
from scipy.special import gamma

from .metrics import shave
from .resize import imresize

__all__ = [
    "NIQEParamsError",
    "BLOCK_SIZE",
    "GRAY_COEFFS",
    "GAMMA_GRID",
    "rgb_to_gray",
    "gaussian_window",
    "filter_replicate",
    "matlab_colon",
    "mscn",
    "estimate_aggd",
    "block_features",
    "niqe_features",
    "mvg_distance",
    "matlab_pinv",
    "load_pristine_params",
    "niqe",
]

PARAMS_PATH = Path(__file__).resolve().parent / "data" / "niqe_pris_params.npz"
BLOCK_SIZE = 96
# MATLAB rgb2gray: the luma row of the inverse of the NTSC transform, to 15 digits.
GRAY_COEFFS = (0.298936021293775, 0.587043074451121, 0.114020904255103)
# circshift offsets (rows, columns) of the four neighbour products, in the release's order.
SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))


class NIQEParamsError(RuntimeError):
    """The pristine-model file is missing or is not the release's model."""


def rgb_to_gray(image: torch.Tensor) -> np.ndarray:
    """MATLAB ``double(rgb2gray(X))`` for ``uint8`` X; a one-channel image is returned as it is.

    Parameters
    ----------
    image : uint8 Tensor, shape (3, H, W), (1, H, W) or (H, W)

    Returns
    -------
    float64 ndarray, shape (H, W), integers in 0..255
    """
    if image.dtype != torch.uint8:
        raise TypeError(f"NIQE expects uint8 images (MATLAB's rgb2gray convention), got {image.dtype}")
    x = image.cpu().numpy()
    if x.ndim == 2:
        return x.astype(np.float64)
    if x.ndim != 3 or x.shape[0] not in (1, 3):
        raise ValueError(f"NIQE expects (3, H, W), (1, H, W) or (H, W), got shape {tuple(image.shape)}")
    if x.shape[0] == 1:
        return x[0].astype(np.float64)
    r, g, b = (x[k].astype(np.float64) for k in range(3))
    gray = GRAY_COEFFS[0] * r + GRAY_COEFFS[1] * g + GRAY_COEFFS[2] * b
    # The uint8 result: rounded half away from zero (np.round would round half to even), saturated.
    return np.clip(np.floor(gray + 0.5), 0, 255)


def gaussian_window(size: int = 7, sigma: float = 7 / 6) -> np.ndarray:
    """MATLAB ``fspecial('gaussian', size, sigma)``: sampled on integer offsets, tiny values zeroed, sum 1."""
    half = (size - 1) / 2
    x = np.arange(-half, half + 1)
    h = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * sigma * sigma))
    h[h < np.finfo(np.float64).eps * h.max()] = 0
    return h / h.sum()


def filter_replicate(image: np.ndarray, window: np.ndarray) -> np.ndarray:
    """MATLAB ``imfilter(image, window, 'replicate')``: correlation, 'same' size, edge pixels repeated."""
    return correlate(image, window, mode="nearest")


def matlab_colon(start: float, step: float, stop: float) -> np.ndarray:
    """MATLAB's ``start:step:stop`` in double.

    MATLAB fills the first half as ``start + k * step`` and the second half back from the end point as
    ``stop - (n - k) * step`` (so ``0.2:0.001:10`` ends exactly at 10), which differs from
    ``np.arange``'s ``start + k * step`` by a few units in the last place in the upper half.
    """
    n = int(np.floor((stop - start) / step + 1e-10))
    k = np.arange(n + 1, dtype=np.float64)
    last = start + n * step
    if abs(last - stop) <= 2 * np.finfo(np.float64).eps * max(abs(start), abs(stop)) * n:
        last = stop  # the end point is on the grid: MATLAB returns it exactly
    values = start + k * step
    upper = k > n / 2
    values[upper] = last - (n - k[upper]) * step
    return values


GAMMA_GRID = matlab_colon(0.2, 0.001, 10.0)
# r(a) = Gamma(2/a)^2 / (Gamma(1/a) Gamma(3/a)), the ratio (E|x|)^2 / E[x^2] of a GGD of shape a.
_R_GAMMA = gamma(2.0 / GAMMA_GRID) ** 2 / (gamma(1.0 / GAMMA_GRID) * gamma(3.0 / GAMMA_GRID))


def _matlab_mean(values: np.ndarray) -> np.float64:
    # MATLAB's mean([]) is NaN; numpy floats (not Python's) so that 0 / 0 is NaN too, as in MATLAB.
    return np.mean(values) if values.size else np.float64(np.nan)


def estimate_aggd(vec: np.ndarray) -> tuple[float, float, float]:
    """``[alpha betal betar] = estimateaggdparam(vec)`` of the release (moment matching on the gamma grid).

    Returns
    -------
    (alpha, beta_l, beta_r)
        ``beta_l`` (``beta_r``) is NaN when no value is negative (positive); ``alpha`` is then the
        grid's first point, 0.2, because MATLAB's ``min`` of an all-NaN vector returns index 1.
    """
    vec = np.asarray(vec, dtype=np.float64).ravel()
    with np.errstate(divide="ignore", invalid="ignore"):
        left_std = np.sqrt(_matlab_mean(vec[vec < 0] ** 2))
        right_std = np.sqrt(_matlab_mean(vec[vec > 0] ** 2))
        gammahat = left_std / right_std
        rhat = _matlab_mean(np.abs(vec)) ** 2 / _matlab_mean(vec * vec)
        rhatnorm = (rhat * (gammahat**3 + 1) * (gammahat + 1)) / ((gammahat**2 + 1) ** 2)
    if np.isnan(rhatnorm):
        position = 0
    else:
        position = int(np.argmin((_R_GAMMA - rhatnorm) ** 2))  # first minimum, as MATLAB's min
    alpha = float(GAMMA_GRID[position])
    factor = np.sqrt(gamma(1.0 / alpha) / gamma(3.0 / alpha))
    return alpha, float(left_std * factor), float(right_std * factor)


def block_features(block: np.ndarray) -> list[float]:
    """The 18 features of ``computefeature.m`` for one block of MSCN coefficients."""
    alpha, beta_l, beta_r = estimate_aggd(block)
    feat = [alpha, (beta_l + beta_r) / 2]
    for shift in SHIFTS:
        pair = block * np.roll(block, shift, axis=(0, 1))  # circshift: wraps inside the block
        alpha, beta_l, beta_r = estimate_aggd(pair)
        mean = (beta_r - beta_l) * (gamma(2.0 / alpha) / gamma(1.0 / alpha))
        feat += [alpha, mean, beta_l, beta_r]
    return feat


def mscn(image: np.ndarray, window: np.ndarray | None = None) -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients ``(I - mu) / (sigma + 1)`` of the release."""
    window = gaussian_window() if window is None else window
    mu = filter_replicate(image, window)
    sigma = np.sqrt(np.abs(filter_replicate(image * image, window) - mu * mu))
    return (image - mu) / (sigma + 1)


def niqe_features(gray: np.ndarray, block_size: int = BLOCK_SIZE) -> np.ndarray:
    """The ``(n_blocks, 36)`` features of a gray image in 0..255 (float64), cropped to whole blocks.

    Blocks are listed column by column (MATLAB's order); the order does not change NIQE.
    """
    if block_size % 2:
        raise ValueError(f"block_size must be even (the second scale halves it), got {block_size}")
    rows, cols = gray.shape[0] // block_size, gray.shape[1] // block_size
    if rows * cols == 0:
        raise ValueError(
            f"NIQE needs at least one {block_size}x{block_size} block, the image is {gray.shape[0]}x{gray.shape[1]}"
        )
    image = np.asarray(gray, dtype=np.float64)[: rows * block_size, : cols * block_size]
    per_scale = []
    for scale in (1, 2):
        coeffs = mscn(image)
        size = block_size // scale
        per_scale.append(
            [
                block_features(coeffs[i * size : (i + 1) * size, j * size : (j + 1) * size])
                for j in range(cols)
                for i in range(rows)
            ]
        )
        if scale == 1:
            image = imresize(torch.from_numpy(image), 0.5, method="bicubic").numpy()
    return np.concatenate([np.asarray(f, dtype=np.float64) for f in per_scale], axis=1)


def matlab_pinv(matrix: np.ndarray) -> np.ndarray:
    """MATLAB ``pinv(A)``: singular values below ``max(size(A)) * norm(A) * eps`` count as zero.

    ``np.linalg.pinv``'s default cut-off is ``1e-15 * norm(A)``, 36 times lower for a 36x36 matrix.
    """
    return np.linalg.pinv(matrix, rcond=max(matrix.shape) * np.finfo(np.float64).eps)


def mvg_distance(features: np.ndarray, mu_pris: np.ndarray, cov_pris: np.ndarray) -> float:
    """NIQE from block features: ``nanmean``, ``nancov``, then the release's MVG distance.

    Raises
    ------
    ValueError
        When fewer than two blocks have all features finite (MATLAB's ``nancov`` of one row would
        quietly switch to a scalar variance).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column's nanmean is NaN, as MATLAB's
        mu = np.nanmean(features, axis=0)
    complete = features[~np.isnan(features).any(axis=1)]
    if len(complete) < 2:
        raise ValueError(
            f"NIQE needs at least two blocks whose features are all defined, got {len(complete)} of "
            f"{len(features)} (a flat block has no negative or positive coefficients)"
        )
    cov = np.cov(complete, rowvar=False)  # normalised by n - 1, as nancov
    diff = np.asarray(mu_pris, dtype=np.float64).ravel() - mu
    quality = diff @ matlab_pinv((np.asarray(cov_pris, dtype=np.float64) + cov) / 2) @ diff
    return float(np.sqrt(quality))


@lru_cache(maxsize=2)
def load_pristine_params(path: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(mu_prisparam (36,), cov_prisparam (36, 36))`` of the release's ``modelparameters.mat``."""
    path = Path(path) if path else PARAMS_PATH
    try:
        with np.load(path, allow_pickle=False) as data:
            mu, cov = data["mu_pris_param"], data["cov_pris_param"]
    except (OSError, KeyError, ValueError) as exc:
        raise NIQEParamsError(f"{path}: cannot read the NIQE pristine model ({exc})") from None
    mu = np.asarray(mu, dtype=np.float64).ravel()
    cov = np.asarray(cov, dtype=np.float64)
    if mu.shape != (36,) or cov.shape != (36, 36):
        raise NIQEParamsError(f"{path}: expected a 36-vector and a 36x36 matrix, got {mu.shape} and {cov.shape}")
    return mu, cov


def niqe(image: torch.Tensor, border: int = 0, *, params_path: str | Path | None = None) -> float:
    """NIQE of a ``uint8`` image (lower is more natural), as the MATLAB release computes it.

    Parameters
    ----------
    image : uint8 Tensor, shape (3, H, W), (1, H, W) or (H, W)
        RGB (converted with ``rgb2gray``) or grayscale.
    border : int
        Pixels removed at each side first. SR tables remove the scale factor (4 for 4x), as the PIRM
        2018 evaluation does; 0 scores the whole image, as the release's demo does.
    params_path : path, optional
        An ``.npz`` with ``mu_pris_param`` and ``cov_pris_param`` (default: the shipped release model).

    Returns
    -------
    float
    """
    gray = shave(torch.from_numpy(rgb_to_gray(image)), border).numpy()
    mu, cov = load_pristine_params(str(params_path) if params_path else None)
    return mvg_distance(niqe_features(gray), mu, cov)
