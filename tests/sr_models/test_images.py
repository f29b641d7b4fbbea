"""Every kind of bad image file gets an ImageError that names the file; good ones load exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from sr_models.images import ImageError, read_image, write_png


@pytest.fixture
def rgb_array():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8)


def test_rgb_and_gray_load_as_chw_uint8(tmp_path, rgb_array):
    Image.fromarray(rgb_array).save(tmp_path / "a.png")
    Image.fromarray(rgb_array[:, :, 0]).save(tmp_path / "g.png")
    rgb = read_image(tmp_path / "a.png")
    gray = read_image(tmp_path / "g.png")
    assert rgb.dtype == torch.uint8 and rgb.shape == (3, 12, 16)
    assert np.array_equal(rgb.permute(1, 2, 0).numpy(), rgb_array)
    assert gray.shape == (1, 12, 16)
    assert np.array_equal(gray[0].numpy(), rgb_array[:, :, 0])  # the pixels, not only the shape


def test_write_png_round_trips_and_leaves_no_temporary_file(tmp_path, rgb_array):
    image = torch.from_numpy(rgb_array).permute(2, 0, 1).contiguous()
    path = write_png(image, tmp_path / "out" / "x.png")
    assert torch.equal(read_image(path), image)
    assert sorted(p.name for p in path.parent.iterdir()) == ["x.png"]


def _assert_refused(path, fragment):
    with pytest.raises(ImageError) as info:
        read_image(path)
    message = str(info.value)
    assert str(path) in message  # names the file
    assert fragment in message


def test_missing_and_empty_files(tmp_path):
    _assert_refused(tmp_path / "nope.png", "no such file")
    (tmp_path / "empty.png").write_bytes(b"")
    _assert_refused(tmp_path / "empty.png", "empty")


def test_non_image_file(tmp_path):
    (tmp_path / "notes.png").write_text("this is not a PNG")
    _assert_refused(tmp_path / "notes.png", "not an image")


def test_truncated_png(tmp_path, rgb_array):
    Image.fromarray(np.tile(rgb_array, (20, 20, 1))).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    _assert_refused(tmp_path / "cut.png", "damaged or truncated")


def test_corrupt_png_data(tmp_path, rgb_array):
    Image.fromarray(np.tile(rgb_array, (10, 10, 1))).save(tmp_path / "ok.png")
    data = bytearray((tmp_path / "ok.png").read_bytes())
    for i in range(200, 260):  # scribble over compressed pixel data
        data[i] ^= 0xFF
    (tmp_path / "bad.png").write_bytes(bytes(data))
    _assert_refused(tmp_path / "bad.png", "damaged or truncated")


def test_palette_png(tmp_path, rgb_array):
    Image.fromarray(rgb_array).convert("P").save(tmp_path / "p.png")
    _assert_refused(tmp_path / "p.png", "palette")


def test_rgba_png(tmp_path, rgb_array):
    Image.fromarray(rgb_array).convert("RGBA").save(tmp_path / "a.png")
    _assert_refused(tmp_path / "a.png", "alpha channel")


def test_16_bit_png(tmp_path):
    Image.fromarray(np.full((8, 8), 40000, dtype=np.uint16)).save(tmp_path / "deep.png")
    _assert_refused(tmp_path / "deep.png", "16-bit")


def test_one_bit_png(tmp_path, rgb_array):
    Image.fromarray(rgb_array).convert("1").save(tmp_path / "bw.png")
    _assert_refused(tmp_path / "bw.png", "1-bit")


def test_written_png_is_readable_by_other_users(tmp_path, rgb_array):
    # Regression: mkstemp made stimuli 0600, unreadable by a web server running as another user.
    path = write_png(torch.from_numpy(rgb_array).permute(2, 0, 1).contiguous(), tmp_path / "x.png")
    assert path.stat().st_mode & 0o777 == 0o644


def _png_header_only(path, width, height):
    """A PNG whose header declares ``width`` x ``height`` (8-bit gray) and whose data is empty: a
    decompression bomb's shape without its gigabytes."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


@pytest.mark.parametrize("side, fragment", [
    (20000, "decompression bomb"),  # over twice Pillow's MAX_IMAGE_PIXELS: DecompressionBombError
    (12000, "decompression bomb"),  # over MAX_IMAGE_PIXELS: DecompressionBombWarning
    (5000, "5000x5000 pixels, too large"),  # within Pillow's limit, over the study's side bound
])
def test_huge_images_are_refused_as_too_large_not_as_damaged(tmp_path, side, fragment):
    """Catches the old message ('damaged or truncated') for a bomb, and a read_image that decodes an
    image over MAX_IMAGE_SIDE (here its empty data would be reported as damaged instead)."""
    from sr_models.images import MAX_IMAGE_SIDE

    _png_header_only(tmp_path / "big.png", side, side)
    _assert_refused(tmp_path / "big.png", fragment)
    with pytest.raises(ImageError) as info:
        read_image(tmp_path / "big.png")
    assert "damaged" not in str(info.value) and f"at most {MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE}" in str(info.value)
