"""The upscaling methods the platform can run, by name: ``nearest``, ``bicubic`` and the networks.

Every method is a callable ``(uint8 (C, H, W) LR) -> uint8 (C, 4H, 4W) SR`` so evaluation and stimulus
generation treat them alike. Network variants load the shipped weights from ``weights_dir``
(``<variant>.safetensors`` with its model card ``<variant>.json``) or a given file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from .inference import WeightsError, load_generator, pick_device, upscale
from .resize import imresize
from .variants import VARIANTS

__all__ = ["INTERPOLATION_METHODS", "NETWORK_METHODS", "Upscaler", "get_upscaler", "shipped_weights"]

INTERPOLATION_METHODS = ("nearest", "bicubic")
NETWORK_METHODS = tuple(VARIANTS)


@dataclass(frozen=True)
class Upscaler:
    """A named method and the function that applies it."""

    name: str
    scale: int
    fn: Callable[[torch.Tensor], torch.Tensor]
    weights: Path | None = None

    def __call__(self, lr: torch.Tensor) -> torch.Tensor:
        return self.fn(lr)


def shipped_weights(variant: str, weights_dir: str | Path) -> tuple[Path, dict]:
    """Path and model card of a variant's shipped weights; a clear error if they are not there."""
    weights_dir = Path(weights_dir)
    path = weights_dir / f"{variant}.safetensors"
    card_path = weights_dir / f"{variant}.json"
    if not path.is_file():
        raise WeightsError(
            f"no shipped weights for {variant!r} at {path}; train them with "
            f"`python manage.py train_sr {variant}` or pass --weights FILE"
        )
    card = json.loads(card_path.read_text()) if card_path.is_file() else {}
    return path, card


def get_upscaler(
    method: str,
    *,
    scale: int = 4,
    weights_dir: str | Path | None = None,
    weights: str | Path | None = None,
    device: str | torch.device | None = "auto",
    tile: int | None = 192,
    precision: str = "fp32",
) -> Upscaler:
    """The upscaler called ``method``.

    Parameters
    ----------
    weights_dir : folder of shipped weights (networks only).
    weights : an explicit weights file or training checkpoint, overriding the shipped one.
    device : 'auto' (CUDA when present), 'cpu', 'cuda', ... (networks only; interpolation runs on CPU).
    precision : 'fp32' (default: exact numbers) or 'bf16' (faster on CUDA); see ``upscale``.
    """
    if method in INTERPOLATION_METHODS:
        if weights:
            raise ValueError(f"--weights makes no sense for {method!r}")

        def interpolate(lr: torch.Tensor) -> torch.Tensor:
            return imresize(lr, float(scale), method=method)

        return Upscaler(method, scale, interpolate)
    if method in NETWORK_METHODS:
        if weights is not None:
            path, expected = Path(weights), None
        else:
            if weights_dir is None:
                raise ValueError("weights_dir is needed to find shipped weights")
            path, card = shipped_weights(method, weights_dir)
            expected = card.get("sha256")
        model = load_generator(path, device=pick_device(device), expected_sha256=expected)
        if model.scale != scale:
            raise WeightsError(f"{path}: a x{model.scale} generator, but scale {scale} was asked for")

        def network(lr: torch.Tensor) -> torch.Tensor:
            return upscale(model, lr, tile=tile, precision=precision).cpu()

        return Upscaler(method, scale, network, path)
    known = ", ".join(INTERPOLATION_METHODS + NETWORK_METHODS)
    raise ValueError(f"unknown method {method!r}; choose one of {known}")
