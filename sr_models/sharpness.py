"""High-frequency energy of SR images relative to HR: a number for "sharper".

Two measures, both on the Y channel of :func:`sr_models.metrics.to_y` (MATLAB ``rgb2ycbcr``; a
grayscale image is its own Y) after shaving ``border`` pixels at each side, as PSNR and SSIM are:

* **Laplacian energy**, the mean squared response of the 5-point discrete Laplacian

  .. math:: L(x) = x_{i-1,j} + x_{i+1,j} + x_{i,j-1} + x_{i,j+1} - 4 x_{i,j}

  (MATLAB ``fspecial('laplacian', 0)``, OpenCV ``Laplacian`` with ``ksize=1``) over the 'valid' region,
  so no padding enters: an ``h x w`` image gives ``(h - 2) x (w - 2)`` responses. This is the "energy
  of Laplacian" focus measure [1]_ [2]_ averaged instead of summed, so images of different sizes
  compare. In frequency terms it weights the power spectrum by
  ``(4 sin^2(pi fx) + 4 sin^2(pi fy))^2``, about ``(2 pi |f|)^4`` at low frequencies: it is dominated by
  the highest frequencies, including spurious ones (block edges, ringing, noise, aliasing).
* **Spectral high-frequency share**, the fraction of the (Hann-windowed, mean-removed) power spectrum
  above a radial frequency ``cutoff``, by default the Nyquist frequency of the LR image,
  ``0.5 / scale`` cycles per HR pixel (0.125 for 4x). The LR cannot carry any frequency above it, so
  whatever an SR method puts there was synthesised (detail, texture, or artefacts).

The ratio SR / HR of either is 1 when SR has HR's amount of high frequencies, below 1 when SR is
smoother, above 1 when SR has more. On Set5 at 4x, MATLAB bicubic keeps 1% to 7% of HR's Laplacian
energy (spectral ratio 0.04 to 0.07), while nearest neighbour, whose 4x4 blocks have hard edges, has
0.27 to 2.3 times HR's Laplacian energy (spectral ratio 0.48 to 1.37): neither measure says whether
the high frequencies are the right ones, so report them beside PSNR/LPIPS and the MOS, never alone.

References
----------
.. [1] M. Subbarao, T. Choi, A. Nikzad, "Focusing techniques", Optical Engineering 32(11), 1993
       (energy of the Laplacian as a focus measure).
.. [2] S. Pertuz, D. Puig, M. A. Garcia, "Analysis of focus measure operators for shape-from-focus",
       Pattern Recognition 46(5), 2013 (survey; operator LAP1).
.. [3] F. J. Harris, "On the use of windows for harmonic analysis with the discrete Fourier
       transform", Proc. IEEE 66(1), 1978 (the Hann window against leakage).
"""

from __future__ import annotations

import math

import torch

from .metrics import shave, to_y

__all__ = ["laplacian", "laplacian_energy", "hf_energy_ratio", "spectral_hf_share", "spectral_hf_ratio",
           "periodic_component", "grid_amplitude", "grid_ratio"]


def _check_pair(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")


def _y(image: torch.Tensor, border: int, min_size: int) -> torch.Tensor:
    y = shave(to_y(image), border)
    if min(y.shape[-2:]) < min_size:
        raise ValueError(
            f"{y.shape[-2]}x{y.shape[-1]} pixels after the {border}-pixel border is too small "
            f"(needs {min_size}x{min_size})"
        )
    return y


def laplacian(y: torch.Tensor) -> torch.Tensor:
    """'valid' 5-point Laplacian of ``(..., H, W)`` float images: ``(..., H - 2, W - 2)``."""
    c = y[..., 1:-1, 1:-1]
    return y[..., :-2, 1:-1] + y[..., 2:, 1:-1] + y[..., 1:-1, :-2] + y[..., 1:-1, 2:] - 4.0 * c


def laplacian_energy(image: torch.Tensor, border: int = 4) -> torch.Tensor:
    """Mean squared 5-point Laplacian of Y, ``border`` pixels shaved first, 'valid' filtering.

    Parameters
    ----------
    image : uint8 Tensor, shape (H, W), (C, H, W) or (N, C, H, W), C = 1 or 3

    Returns
    -------
    float64 Tensor, shape () or (N,), in (0..255)^2 units (exact: integer arithmetic in float64).
    """
    y = _y(image, border, 3)
    lap = laplacian(y)
    return (lap * lap).mean(dim=(-2, -1))


def hf_energy_ratio(sr: torch.Tensor, hr: torch.Tensor, border: int = 4) -> torch.Tensor:
    """``laplacian_energy(sr) / laplacian_energy(hr)``: 1 when SR is as "sharp" as HR.

    A flat HR (energy 0) gives ``inf`` (or ``nan`` if SR is flat too), as float division does.
    """
    _check_pair(sr, hr)
    return laplacian_energy(sr, border) / laplacian_energy(hr, border)


def _hann(n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    # Symmetric Hann window (MATLAB hann(n)), zero at both ends: removes the jump that the DFT's
    # periodic extension would otherwise spread over all frequencies.
    if n == 1:
        return torch.ones(1, dtype=dtype, device=device)
    k = torch.arange(n, dtype=dtype, device=device)
    return 0.5 - 0.5 * torch.cos(2.0 * math.pi * k / (n - 1))


def spectral_hf_share(
    image: torch.Tensor, scale: int = 4, border: int = 4, cutoff: float | None = None
) -> torch.Tensor:
    """Share of Y's spectral energy above a radial frequency: the LR's Nyquist by default.

    The shaved Y image (float64) has its mean removed and is multiplied by a separable Hann window;
    ``P(fx, fy) = |DFT|^2`` on the DFT grid ``fx = k / W``, ``fy = l / H`` (cycles per pixel, in
    ``[-0.5, 0.5)``). The share is

    .. math:: \\sum_{|f| > c} P(f) \\big/ \\sum_{f \\ne 0} P(f), \\qquad |f| = \\sqrt{f_x^2 + f_y^2}

    with ``c = cutoff``, default ``0.5 / scale`` (the LR Nyquist frequency in HR pixels). The DC bin is
    left out of the total (after windowing it holds some of the mean-removed image's energy, not
    detail).

    Returns
    -------
    float64 Tensor, shape () or (N,), in [0, 1].
    """
    if cutoff is None:
        if scale < 1:
            raise ValueError(f"scale must be >= 1, got {scale}")
        cutoff = 0.5 / scale
    if not 0 < cutoff < math.sqrt(0.5):
        raise ValueError(f"cutoff must be in (0, 0.707) cycles per pixel, got {cutoff}")
    y = _y(image, border, 8)
    h, w = y.shape[-2:]
    y = y - y.mean(dim=(-2, -1), keepdim=True)
    y = y * _hann(h, y.dtype, y.device)[:, None] * _hann(w, y.dtype, y.device)[None, :]
    power = torch.fft.fft2(y).abs().square()
    fy = torch.fft.fftfreq(h, dtype=y.dtype, device=y.device)[:, None]
    fx = torch.fft.fftfreq(w, dtype=y.dtype, device=y.device)[None, :]
    radius = torch.sqrt(fx * fx + fy * fy)
    total = (power * (radius > 0)).sum(dim=(-2, -1))
    high = (power * (radius > cutoff)).sum(dim=(-2, -1))
    return high / total


def spectral_hf_ratio(
    sr: torch.Tensor, hr: torch.Tensor, scale: int = 4, border: int = 4, cutoff: float | None = None
) -> torch.Tensor:
    """``spectral_hf_share(sr) / spectral_hf_share(hr)`` with the same cutoff (LR Nyquist by default)."""
    _check_pair(sr, hr)
    return spectral_hf_share(sr, scale, border, cutoff) / spectral_hf_share(hr, scale, border, cutoff)


def periodic_component(x: torch.Tensor, period: int = 4) -> torch.Tensor:
    """The part of ``(..., H, W)`` images that repeats every ``period`` pixels: the mean of each of the
    ``period x period`` pixel phases, less their mean, shape ``(..., period, period)``.

    In frequency terms it is the image restricted to the ``period**2 - 1`` non-zero frequencies of the
    lattice ``(k H / period, l W / period)``; its mean square is that part of the image's energy, and the
    part of a pixel MSE that lies there. ``H`` and ``W`` must be multiples of ``period``.
    """
    h, w = x.shape[-2:]
    if h % period or w % period:
        raise ValueError(f"{h}x{w} images are not whole {period}x{period} blocks")
    phases = x.reshape(*x.shape[:-2], h // period, period, w // period, period).mean(dim=(-4, -2))
    return phases - phases.mean(dim=(-2, -1), keepdim=True)



def grid_amplitude(image: torch.Tensor, period: int = 4, border: int = 4) -> torch.Tensor:
    """Root mean square of the ``period``-periodic component of Y (:func:`periodic_component`), grey
    levels, ``border`` pixels shaved first and the last rows and columns that do not fill a whole
    ``period`` dropped.

    A 4x super-resolution network ends in pixel shuffles, so each output pixel comes from one of 16
    sub-pixel phases; a pattern locked to them (a checkerboard) is this number. Natural images have a
    little of it (content that happens to align), so read it as a ratio to the HR's (:func:`grid_ratio`).

    Parameters
    ----------
    image : uint8 Tensor, shape (H, W), (C, H, W) or (N, C, H, W), C = 1 or 3

    Returns
    -------
    float64 Tensor, shape () or (N,).
    """
    y = _y(image, border, period)
    h, w = y.shape[-2] // period * period, y.shape[-1] // period * period
    return periodic_component(y[..., :h, :w], period).pow(2).mean(dim=(-2, -1)).sqrt()


def grid_ratio(sr: torch.Tensor, hr: torch.Tensor, period: int = 4, border: int = 4) -> torch.Tensor:
    """:func:`grid_amplitude` of SR over that of HR: 1 for no more grid than the original has."""
    _check_pair(sr, hr)
    return grid_amplitude(sr, period, border) / grid_amplitude(hr, period, border)
