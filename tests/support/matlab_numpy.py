"""A straightforward NumPy port of MATLAB ``imresize`` (loops over output pixels, as MATLAB's
``imresizemex`` does), written independently of :mod:`sr_models.resize`.

Two uses: an independent reference for the tests (it gathers ``in[indices] * weights`` per output
pixel instead of building a matrix, and mirrors indices with its own code), and "the numpy port a
user would pick" in ``benchmarks/resize_metrics.py``.
"""

from __future__ import annotations

import math

import numpy as np


def cubic(x):
    ax = np.abs(x)
    return ((1.5 * ax**3 - 2.5 * ax**2 + 1) * (ax <= 1)
            + (-0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2)))


def box(x):
    return ((x >= -0.5) & (x < 0.5)).astype(float)


def contributions(in_len, out_len, scale, kernel, width, antialias):
    if scale < 1 and antialias:
        h = lambda x: scale * kernel(scale * x)  # noqa: E731
        width = width / scale
    else:
        h = kernel
    out = []
    p = int(math.ceil(width)) + 2
    for x in range(1, out_len + 1):
        u = x / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - width / 2)
        idx = [left + k for k in range(p)]
        w = np.array([h(u - i) for i in idx], dtype=float)
        w = w / w.sum()
        mirrored = []
        for i in idx:  # symmetric padding, 1-based
            j = i
            while j < 1 or j > in_len:
                j = 1 - j if j < 1 else 2 * in_len + 1 - j
            mirrored.append(j - 1)
        out.append((np.array(mirrored), w))
    return out


def _resize_dim(img, dim, contrib, as_uint8):
    img = np.moveaxis(img, dim, 0)
    res = np.empty((len(contrib),) + img.shape[1:], dtype=float)
    for o, (idx, w) in enumerate(contrib):
        acc = np.zeros(img.shape[1:], dtype=float)
        for i, wi in zip(idx, w):
            if wi != 0:
                acc = acc + wi * img[i]
        res[o] = acc
    if as_uint8:
        res = np.clip(np.floor(res + 0.5), 0, 255)
    return np.moveaxis(res, 0, dim)


def imresize(img: np.ndarray, scale: float, method: str = "bicubic") -> np.ndarray:
    """``img`` (H, W) or (H, W, C), uint8 or float; returns the same dtype."""
    kernel, width, aa = (cubic, 4.0, True) if method == "bicubic" else (box, 1.0, False)
    as_uint8 = img.dtype == np.uint8
    x = img.astype(float)
    h, w = img.shape[:2]
    out_h, out_w = math.ceil(scale * h), math.ceil(scale * w)
    x = _resize_dim(x, 0, contributions(h, out_h, scale, kernel, width, aa), as_uint8)
    x = _resize_dim(x, 1, contributions(w, out_w, scale, kernel, width, aa), as_uint8)
    return x.astype(np.uint8) if as_uint8 else x
