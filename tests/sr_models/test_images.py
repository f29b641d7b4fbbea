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
