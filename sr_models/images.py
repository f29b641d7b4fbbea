"""Reading and writing the 8-bit images every SR benchmark uses, with errors a researcher can act on.

Only lossless 8-bit grayscale or RGB images are accepted. Anything else (a palette or 16-bit PNG, an
alpha channel, a truncated or non-image file) would be silently converted by a lenient loader and give
numbers that differ from MATLAB's, so it is refused with a message that names the file and the fix.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .files import atomic_write

__all__ = ["MAX_IMAGE_SIDE", "ImageError", "image_size", "read_image", "write_png", "to_tensor", "to_numpy"]

# A stimulus is shown pixel for pixel, so no image of a study may be larger than a screen shows whole
# (a 4x upscaling of a 1024-pixel LR image). The bound is checked on the file's header, so a
# decompression bomb is refused before it is decoded. The study file's check reads it from here.
MAX_IMAGE_SIDE = 4096

# Pillow modes we accept and what they mean; everything else gets a specific refusal below.
_ACCEPTED_MODES = {"L": 1, "RGB": 3}
_REFUSALS = {
    "P": "is a palette (indexed-colour) image; save it as 8-bit RGB so no colour is quantised",
    "PA": "is a palette image with transparency; save it as 8-bit RGB",
    "RGBA": "has an alpha channel; SR benchmarks compare RGB only: save it as 8-bit RGB without alpha",
    "LA": "has an alpha channel; save it as 8-bit grayscale or RGB without alpha",
    "I;16": "is a 16-bit image; SR metrics are defined on 8-bit images: convert it to 8-bit first",
    "I;16B": "is a 16-bit image; convert it to 8-bit first",
    "I;16L": "is a 16-bit image; convert it to 8-bit first",
    "I": "is a 16- or 32-bit integer image; convert it to 8-bit first",
    "F": "is a floating-point image; convert it to 8-bit first",
    "1": "is a 1-bit (black and white) image; save it as 8-bit grayscale or RGB",
    "CMYK": "is a CMYK image; convert it to 8-bit RGB",
    "YCbCr": "is stored as YCbCr; convert it to 8-bit RGB",
}


class ImageError(ValueError):
    """An image file that cannot be used, with the file's path in the message."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def image_size(path: str | os.PathLike, max_side: int | None = MAX_IMAGE_SIDE) -> tuple[int, int]:
    """(width, height) of an image file from its header; nothing is decoded.

    Raises
    ------
    ImageError
        Naming the file: not a readable image, a decompression bomb (more pixels than Pillow's
        ``Image.MAX_IMAGE_PIXELS``: ``DecompressionBombWarning``, twice as many:
        ``DecompressionBombError``), or larger than ``max_side`` on a side.
    """
    limit = f"at most {max_side}x{max_side} pixels, since stimuli are shown pixel for pixel"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        bound = f"; {limit}" if max_side else ""
        raise ImageError(path, f"is a decompression bomb, far too large to decode ({exc}){bound}") from None
    except UnidentifiedImageError:
        raise ImageError(path, "is not an image file Pillow can read (corrupt, or not an image)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(path, f"is not a readable image ({exc})") from None
    if max_side is not None and max(width, height) > max_side:
        raise ImageError(path, f"is {width}x{height} pixels, too large: {limit}")
    return width, height


def read_image(path: str | os.PathLike, max_side: int | None = MAX_IMAGE_SIDE) -> torch.Tensor:
    """Read an 8-bit grayscale or RGB image file of at most ``max_side`` pixels a side.

    The size is checked on the header first (:func:`image_size`), so a decompression bomb or an
    oversized image is refused by name before anything is decoded.

    Returns
    -------
    uint8 Tensor, shape (C, H, W) with C = 1 (grayscale) or 3 (RGB).

    Raises
    ------
    ImageError
        For a missing, empty, truncated, corrupt or non-image file, a decompression bomb, an image
        larger than ``max_side`` on a side, and for palette, alpha, 16-bit and other
        non-8-bit-RGB/gray images; the message names the file and what to do.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageError(path, "no such file")
    if path.stat().st_size == 0:
        raise ImageError(path, "file is empty")
    image_size(path, max_side)
    try:
        with warnings.catch_warnings():
            # Pillow warns (not raises) on some damaged files; we want to refuse those.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                mode = img.mode
                if mode not in _ACCEPTED_MODES:
                    raise ImageError(path, _REFUSALS.get(mode, f"has unsupported image mode {mode!r}; save it as 8-bit RGB"))
                # 16-bit grayscale PNGs open in mode 'I' or 'I;16', caught above. load() decodes
                # the whole file, so truncation and CRC errors surface here rather than later.
                img.load()
                array = np.asarray(img, dtype=np.uint8)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(path, "is not an image file Pillow can read (corrupt, or not an image)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise ImageError(path, f"is damaged or truncated ({exc})") from None
    return to_tensor(array)


def to_tensor(array: np.ndarray) -> torch.Tensor:
    """``(H, W)`` or ``(H, W, C)`` uint8 array to a ``(C, H, W)`` uint8 tensor."""
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(array.transpose(2, 0, 1).copy())  # copy: Pillow's buffer is read-only


def to_numpy(image: torch.Tensor) -> np.ndarray:
    """``(C, H, W)`` uint8 tensor to an ``(H, W)`` or ``(H, W, 3)`` array for Pillow."""
    if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"expected a uint8 (1|3, H, W) tensor, got {image.dtype} {tuple(image.shape)}")
    array = image.detach().cpu().numpy().transpose(1, 2, 0)
    return array[:, :, 0] if array.shape[2] == 1 else array


def write_png(image: torch.Tensor, path: str | os.PathLike) -> Path:
    """Write a ``(C, H, W)`` uint8 image as PNG atomically.

    The file appears under its final name only once complete (:func:`sr_models.files.atomic_write`),
    so a reader, or a worker killed mid-write, never sees a half-written image under the real name.
    """
    path = Path(path)
    with atomic_write(path) as fh:
        Image.fromarray(to_numpy(image)).save(fh, format="PNG")
    return path
