"""Loading shipped generators and upscaling images of any size with bounded memory.

``upscale`` turns a ``uint8`` LR image into a ``uint8`` SR image exactly as the other methods do
(values rounded half up and saturated), so PSNR/SSIM of networks and of bicubic are computed alike.
Large images are processed in tiles whose context margin covers the network's receptive field, so a
tiled result equals the untiled one (to float rounding) while memory stays bounded.
"""

from __future__ import annotations

import hashlib
import math
from functools import lru_cache
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from .files import write_bytes_atomic
from .networks import SRResNet

__all__ = [
    "WeightsError",
    "pick_device",
    "load_generator",
    "save_generator",
    "upscale",
    "PRECISIONS",
    "receptive_radius_lr",
    "sha256_file",
    "weights_metadata",
]


class WeightsError(RuntimeError):
    """A weights file that is missing, corrupt, or does not fit the network."""


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``'auto'``/None: CUDA when present, else CPU."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_generator(model: SRResNet, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Save a generator's weights (BN statistics included) as safetensors, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arch = {"arch": "srresnet", "n_blocks": str(len(model.blocks)), "channels": str(model.head[0].out_channels),
            "scale": str(model.scale)}
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return write_bytes_atomic(path, safetensors_bytes(state, metadata={**arch, **(metadata or {})}))


def _load_state(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    if path.suffix == ".safetensors":
        try:
            state = load_file(str(path))
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as fh:
                meta = fh.metadata() or {}
        except (SafetensorError, OSError, ValueError) as exc:
            raise WeightsError(f"{path}: not a readable safetensors file ({exc})") from None
        return state, meta
    # A training checkpoint (.pt) of this project: the generator's state dict is under 'generator'.
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several unrelated types for a damaged file
        raise WeightsError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}: {exc})") from None
    if isinstance(ckpt, dict) and "generator" in ckpt:
        meta = {k: str(v) for k, v in ckpt.get("arch", {}).items()}
        if "step" in ckpt:
            meta["steps"] = str(ckpt["step"])
        return ckpt["generator"], meta
    if isinstance(ckpt, dict) and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        return ckpt, {}
    raise WeightsError(f"{path}: a PyTorch file, but neither a training checkpoint nor a state dict")


def weights_metadata(path: str | Path) -> dict[str, str]:
    """Metadata of a weights file or training checkpoint ('steps' when known: the checkpoint's step)."""
    return _load_state(Path(path))[1]


def load_generator(path: str | Path, device: str | torch.device | None = "cpu", expected_sha256: str | None = None) -> SRResNet:
    """Load an SRResNet generator in eval mode (BN statistics frozen).

    Parameters
    ----------
    path : safetensors file (shipped weights) or a training checkpoint ``.pt``.
    expected_sha256 : str, optional
        Refuse the file if its hash differs (shipped weights record theirs in the model card).

    Raises
    ------
    WeightsError
        With the path and what is wrong: missing, unreadable, wrong hash, or keys/shapes that do not
        fit the architecture.
    """
    path = Path(path).resolve()
    # The file's size and mtime are part of the cache key, so a replaced file is read again.
    stamp = (path.stat().st_mtime_ns, path.stat().st_size) if path.is_file() else None
    return _load_generator_cached(str(path), stamp, str(pick_device(device)), expected_sha256)


@lru_cache(maxsize=8)
def _load_generator_cached(path_str: str, stamp, device_str: str, expected_sha256: str | None) -> SRResNet:
    # Cached so a worker loads each network once, not once per stimulus.
    path = Path(path_str)
    if expected_sha256 is not None and path.is_file():
        actual = sha256_file(path)
        if actual != expected_sha256:
            raise WeightsError(f"{path}: SHA-256 {actual[:12]}... differs from the model card's {expected_sha256[:12]}...; the file is corrupt or not the shipped one")
    state, meta = _load_state(path)
    try:
        model = SRResNet(
            n_blocks=int(meta.get("n_blocks", 16)), channels=int(meta.get("channels", 64)), scale=int(meta.get("scale", 4))
        )
    except ValueError as exc:
        raise WeightsError(f"{path}: bad architecture metadata ({exc})") from None
    missing, unexpected = _key_mismatch(model, state)
    if missing or unexpected:
        raise WeightsError(
            f"{path}: does not fit SRResNet({meta.get('n_blocks', 16)} blocks): "
            f"missing {missing[:3]}{'...' if len(missing) > 3 else ''}, unexpected {unexpected[:3]}{'...' if len(unexpected) > 3 else ''}"
        )
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise WeightsError(f"{path}: tensor shapes do not fit SRResNet: {str(exc).splitlines()[1:2]}") from None
    for name, tensor in state.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise WeightsError(f"{path}: tensor {name} holds NaN or infinite values")
    return model.to(device_str).eval().requires_grad_(False)


def _key_mismatch(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> tuple[list[str], list[str]]:
    expected = set(model.state_dict())
    present = set(state)
    return sorted(expected - present), sorted(present - expected)


def receptive_radius_lr(model: SRResNet) -> int:
    """How many LR pixels away an output pixel can still see: the tile margin for exact tiling."""
    radius = 0.0
    scale_now = 1
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            radius += (module.kernel_size[0] // 2) / scale_now
        elif isinstance(module, torch.nn.PixelShuffle):
            scale_now *= module.upscale_factor
    return int(math.ceil(radius))


def _to_model_input(lr: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, bool]:
    gray = lr.shape[-3] == 1
    x = lr.to(device=device, dtype=torch.float32) / 255.0
    if gray:
        x = x.expand(*x.shape[:-3], 3, *x.shape[-2:])  # the network sees gray as equal R, G, B
    return x, gray


def _to_uint8(out: torch.Tensor, gray: bool) -> torch.Tensor:
    x = (out.float().clamp(-1.0, 1.0) + 1.0) * 127.5
    if gray:
        x = x.mean(dim=-3, keepdim=True)
    return torch.floor(x + 0.5).clamp_(0, 255).to(torch.uint8)  # round half up, as MATLAB's uint8()


PRECISIONS = ("fp32", "bf16")


@torch.no_grad()
def _forward(model: SRResNet, x: torch.Tensor, precision: str = "fp32") -> torch.Tensor:
    # Published numbers need the network's own arithmetic: cuDNN would otherwise use TF32 for fp32
    # convolutions (10-bit mantissa) and pick kernels by timing, so PSNR could move between runs.
    if x.device.type != "cuda":
        return model(x)
    if precision == "bf16":
        with torch.autocast("cuda", dtype=torch.bfloat16):
            return model(x).float()
    with torch.backends.cudnn.flags(enabled=True, benchmark=False, deterministic=True, allow_tf32=False):
        return model(x)


@torch.no_grad()
def upscale(
    model: SRResNet,
    lr: torch.Tensor,
    tile: int | None = 192,
    margin: int | None = None,
    precision: str = "fp32",
) -> torch.Tensor:
    """Super-resolve ``uint8`` LR images.

    Parameters
    ----------
    lr : uint8 Tensor, (C, H, W) or (N, C, H, W), C = 1 or 3
        A grayscale image is fed as equal R, G, B and the output's channel mean is returned.
    tile : int or None
        Tile edge in LR pixels; None processes the whole image at once.
    margin : int, optional
        LR pixels of context around each tile; default the network's receptive radius, which makes
        tiled and untiled results equal.
    precision : 'fp32' or 'bf16'
        On CUDA, 'fp32' (the default, for reported numbers) runs true fp32 convolutions with
        deterministic kernels; 'bf16' autocasts for speed (studies where a fraction of a dB is no
        matter). On CPU both run fp32.

    Returns
    -------
    uint8 Tensor, (C, s*H, s*W) or (N, C, s*H, s*W), on the model's device.
    """
    if lr.dtype != torch.uint8:
        raise TypeError(f"upscale expects uint8 images, got {lr.dtype}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if lr.ndim not in (3, 4) or lr.shape[-3] not in (1, 3):
        raise ValueError(f"upscale expects (C, H, W) or (N, C, H, W) with C = 1 or 3, got {tuple(lr.shape)}")
    batched = lr.ndim == 4
    device = next(model.parameters()).device
    x, gray = _to_model_input(lr if batched else lr[None], device)
    if device.type == "cpu":
        x = x.contiguous(memory_format=torch.channels_last)
    h, w = x.shape[-2:]
    s = model.scale
    if tile is None or (h <= tile and w <= tile):
        return _squeeze(_to_uint8(_forward(model, x, precision), gray), batched)
    if margin is None:
        margin = receptive_radius_lr(model)
    out = torch.empty((x.shape[0], 3, h * s, w * s), device=device, dtype=torch.float32)
    for top in range(0, h, tile):
        for left in range(0, w, tile):
            bottom, right = min(top + tile, h), min(left + tile, w)
            t0, l0 = max(top - margin, 0), max(left - margin, 0)
            b0, r0 = min(bottom + margin, h), min(right + margin, w)
            y = _forward(model, x[..., t0:b0, l0:r0], precision)
            out[..., top * s : bottom * s, left * s : right * s] = y[
                ..., (top - t0) * s : (bottom - t0) * s, (left - l0) * s : (right - l0) * s
            ]
    return _squeeze(_to_uint8(out, gray), batched)


def _squeeze(x: torch.Tensor, batched: bool) -> torch.Tensor:
    return x if batched else x[0]
