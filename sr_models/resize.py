"""MATLAB-faithful image resizing in PyTorch.

Published super-resolution numbers are computed on images made by MATLAB's ``imresize``. Any other
bicubic (PIL, OpenCV, ``torch.nn.functional.interpolate``) differs in its kernel, its antialiasing or
its borders, and moves PSNR by tenths of a dB. This module reproduces ``imresize`` exactly:

* the kernel: Keys' cubic convolution with ``a = -0.5`` (MATLAB's ``cubic``), the box kernel for
  ``nearest`` and the triangle for ``bilinear``;
* antialiasing when shrinking: the kernel is stretched by ``1 / scale`` (not for ``nearest``);
* symmetric (mirror, edge pixel repeated) border handling;
* the output size ``ceil(scale * size)`` and MATLAB's sampling grid ``u = x / scale + (1 - 1/scale) / 2``;
* the order of the two passes: the dimension with the smaller scale first, rows first on a tie;
* for ``uint8`` input, rounding (half away from zero) and saturation to ``uint8`` after *each* pass,
  as MATLAB's ``imresizemex`` does because the intermediate image keeps the input's class.

Each 1-D pass is a product with a dense ``(out, in)`` weight matrix, so any number of images in a batch
are resized by two matrix products, on CPU or GPU.

References
----------
.. [1] R. Keys, "Cubic convolution interpolation for digital image processing", IEEE Trans. ASSP,
       29(6), 1981.
.. [2] MathWorks, ``imresize`` (``toolbox/images/images/imresize.m``), functions ``contributions``,
       ``cubic`` and ``box``.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable, Literal, Sequence

import numpy as np
import torch

Method = Literal["bicubic", "bilinear", "nearest"]

__all__ = ["imresize", "contributions", "weight_matrix", "make_lr", "crop_to_multiple", "METHODS"]


def _cubic(x: np.ndarray) -> np.ndarray:
    """MATLAB's ``cubic``: Keys' kernel with a = -0.5, support [-2, 2]."""
    ax = np.abs(x)
    ax2 = ax * ax
    ax3 = ax2 * ax
    return (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * (
        (ax > 1) & (ax <= 2)
    )


def _box(x: np.ndarray) -> np.ndarray:
    """MATLAB's ``box`` (used by 'nearest'): 1 on [-0.5, 0.5)."""
    return ((x >= -0.5) & (x < 0.5)).astype(np.float64)


def _triangle(x: np.ndarray) -> np.ndarray:
    """MATLAB's ``triangle`` (used by 'bilinear')."""
    ax = np.abs(x)
    return (1.0 - ax) * (ax <= 1)


# name -> (kernel, kernel width, antialias by default when shrinking)
METHODS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], float, bool]] = {
    "bicubic": (_cubic, 4.0, True),
    "bilinear": (_triangle, 2.0, True),
    "nearest": (_box, 1.0, False),
}


def contributions(
    in_length: int, out_length: int, scale: float, method: str = "bicubic", antialiasing: bool | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Weights and 0-based input indices of each output sample, as MATLAB's ``contributions``.

    Returns
    -------
    weights, indices : ndarray, shape (out_length, P)
        Row ``i`` says which input samples (already mirrored into ``[0, in_length)``) contribute to
        output sample ``i`` and with what weight. Rows sum to 1. Columns that are zero for every row
        are dropped, as MATLAB drops them.
    """
    kernel, width, default_aa = _method(method)
    if antialiasing is None:
        antialiasing = default_aa
    if scale < 1 and antialiasing:
        # Stretch the kernel so it low-passes at the output's Nyquist frequency.
        def h(x: np.ndarray) -> np.ndarray:
            return scale * kernel(scale * x)

        width = width / scale
    else:
        h = kernel
    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)  # MATLAB's 1-based input coordinate of output x
    left = np.floor(u - width / 2.0)
    p = int(math.ceil(width)) + 2
    indices = left[:, None] + np.arange(p, dtype=np.float64)[None, :]  # 1-based, may be out of range
    weights = h(u[:, None] - indices)
    weights = weights / weights.sum(axis=1, keepdims=True)
    # Symmetric padding: 1..n, n..1, repeated.
    aux = np.concatenate([np.arange(1, in_length + 1), np.arange(in_length, 0, -1)])
    indices = aux[np.mod(indices.astype(np.int64) - 1, aux.size)] - 1
    keep = np.any(weights != 0, axis=0)
    return weights[:, keep], indices[:, keep]


@lru_cache(maxsize=256)
def _weight_matrix_np(
    in_length: int, out_length: int, scale: float, method: str, antialiasing: bool | None
) -> np.ndarray:
    weights, indices = contributions(in_length, out_length, scale, method, antialiasing)
    matrix = np.zeros((out_length, in_length), dtype=np.float64)
    rows = np.repeat(np.arange(out_length), weights.shape[1])
    # Mirrored indices can repeat within a row near the border: their weights add up, as the
    # weighted sum over ``in[indices]`` in MATLAB does.
    np.add.at(matrix, (rows, indices.ravel()), weights.ravel())
    matrix.setflags(write=False)
    return matrix


def weight_matrix(
    in_length: int,
    out_length: int,
    scale: float,
    method: str = "bicubic",
    antialiasing: bool | None = None,
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Dense ``(out_length, in_length)`` resampling matrix of one 1-D pass."""
    matrix = _weight_matrix_np(int(in_length), int(out_length), float(scale), method, antialiasing)
    return torch.tensor(matrix, dtype=dtype, device=device)


def _method(method: str) -> tuple[Callable[[np.ndarray], np.ndarray], float, bool]:
    try:
        return METHODS[method]
    except KeyError:
        raise ValueError(f"unknown resize method {method!r}; choose one of {sorted(METHODS)}") from None


def _round_uint8(x: torch.Tensor) -> torch.Tensor:
    # MATLAB's conversion to uint8 rounds half away from zero and saturates; torch.round would round
    # half to even (2.5 -> 2), which changes about one pixel in a few hundred for 4x bicubic.
    return torch.floor(x + 0.5).clamp_(0, 255)


def _output_size(
    in_size: tuple[int, int], scale: float | tuple[float, float] | None, size: Sequence[int] | None
) -> tuple[tuple[int, int], tuple[float, float]]:
    if (scale is None) == (size is None):
        raise ValueError("give exactly one of scale and size")
    if scale is not None:
        scales = (float(scale), float(scale)) if np.isscalar(scale) else tuple(float(s) for s in scale)
        if len(scales) != 2 or min(scales) <= 0 or not all(math.isfinite(s) for s in scales):
            raise ValueError(f"scale must be positive and finite, got {scale!r}")
        # MATLAB: ceil(scale * size). The product is formed in double, as MATLAB does.
        out = tuple(int(math.ceil(s * n)) for s, n in zip(scales, in_size))
        return out, scales  # type: ignore[return-value]
    out = tuple(int(n) for n in size)  # type: ignore[union-attr]
    if len(out) != 2 or min(out) < 1:
        raise ValueError(f"size must be two positive integers, got {size!r}")
    # MATLAB derives the scale of each dimension from the requested size.
    return out, (out[0] / in_size[0], out[1] / in_size[1])  # type: ignore[return-value]


def imresize(
    image: torch.Tensor,
    scale: float | tuple[float, float] | None = None,
    *,
    size: Sequence[int] | None = None,
    method: Method = "bicubic",
    antialiasing: bool | None = None,
    compute_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Resize like MATLAB's ``imresize(image, scale, method)``.

    Parameters
    ----------
    image : Tensor, shape (..., H, W)
        Any number of leading dimensions, e.g. ``(N, C, H, W)`` or ``(H, W)``. ``uint8`` images
        (values 0..255) are rounded and saturated to ``uint8`` after each pass, as MATLAB does;
        floating-point images are resized in floating point with no clamping (MATLAB's ``double``).
    scale : float or (float, float), optional
        Scale factor, or one per (rows, columns). Output size is ``ceil(scale * size)``.
    size : (int, int), optional
        Output ``(H, W)`` instead of ``scale``.
    method : {'bicubic', 'bilinear', 'nearest'}
    antialiasing : bool, optional
        Stretch the kernel when shrinking. MATLAB's default: on, except for 'nearest'.
    compute_dtype : torch.dtype, optional
        Arithmetic precision. Default float64 for ``uint8`` input (so the rounding ties MATLAB sees in
        double come out the same) and the input's own dtype for float input.

    Returns
    -------
    Tensor, shape (..., H', W'), the input's dtype and device.
    """
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"imresize takes a torch.Tensor, got {type(image).__name__}")
    if image.ndim < 2:
        raise ValueError(f"image must have at least 2 dimensions (..., H, W), got shape {tuple(image.shape)}")
    is_uint8 = image.dtype == torch.uint8
    if not is_uint8 and not image.is_floating_point():
        raise TypeError(f"image must be uint8 or floating point, got {image.dtype}")
    _method(method)
    in_h, in_w = image.shape[-2], image.shape[-1]
    if in_h < 1 or in_w < 1:
        raise ValueError(f"image is empty: shape {tuple(image.shape)}")
    (out_h, out_w), (scale_h, scale_w) = _output_size((in_h, in_w), scale, size)
    if compute_dtype is None:
        compute_dtype = torch.float64 if is_uint8 else image.dtype
    x = image.to(compute_dtype)

    passes = [(-2, in_h, out_h, scale_h), (-1, in_w, out_w, scale_w)]
    if scale_w < scale_h:  # MATLAB sorts the dimensions by scale, stable: rows first on a tie
        passes.reverse()
    for dim, n_in, n_out, s in passes:
        if n_in == n_out and s == 1.0:
            continue  # identity weights; MATLAB's result is the input unchanged
        w = weight_matrix(n_in, n_out, s, method, antialiasing, dtype=compute_dtype, device=x.device)
        x = torch.matmul(w, x) if dim == -2 else torch.matmul(x, w.T)
        if is_uint8:
            x = _round_uint8(x)
    if is_uint8:
        return x.to(torch.uint8)
    return x.to(image.dtype)


def crop_to_multiple(image: torch.Tensor, multiple: int) -> torch.Tensor:
    """Crop ``(..., H, W)`` at the bottom/right so H and W are multiples of ``multiple``.

    Benchmark HR files are cropped this way (``modcrop`` in the SRCNN/SelfExSR code) so that LR is
    exactly ``1 / multiple`` of HR.
    """
    h, w = image.shape[-2], image.shape[-1]
    h2, w2 = h - h % multiple, w - w % multiple
    if h2 == 0 or w2 == 0:
        raise ValueError(f"image of size {h}x{w} is smaller than the scale factor {multiple}")
    return image[..., :h2, :w2]


def make_lr(hr: torch.Tensor, scale: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """LR from HR as the benchmarks make it: crop HR to a multiple of ``scale``, then MATLAB bicubic.

    Returns
    -------
    (hr_cropped, lr)
    """
    hr = crop_to_multiple(hr, scale)
    return hr, imresize(hr, 1.0 / scale, method="bicubic")
