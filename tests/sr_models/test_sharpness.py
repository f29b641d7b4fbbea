"""Laplacian and spectral high-frequency energy: hand-computed cases, SciPy, then real Set5 upscalings."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.signal import convolve2d

from sr_models.metrics import to_y
from sr_models.resize import imresize
from sr_models.sharpness import hf_energy_ratio, laplacian_energy, spectral_hf_ratio, spectral_hf_share

LAPLACIAN_5 = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float64)


def gray(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.uint8)[None]


def binomial_blur(image: torch.Tensor, times: int) -> torch.Tensor:
    """``times`` passes of the separable [1, 2, 1] / 4 filter, edge-replicated, rounded to uint8."""
    x = image.double()[None]
    k = torch.tensor([1.0, 2.0, 1.0], dtype=torch.float64) / 4
    weight = (k[:, None] * k[None, :]).expand(x.shape[1], 1, 3, 3).contiguous()
    for _ in range(times):
        padded = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="replicate")
        x = torch.nn.functional.conv2d(padded, weight, groups=x.shape[1])
    return torch.floor(x[0] + 0.5).clamp(0, 255).to(torch.uint8)


# -- Laplacian energy by hand ----------------------------------------------------------------------
def test_single_bright_pixel():
    image = np.zeros((5, 5), dtype=np.uint8)
    image[2, 2] = 10
    # 'valid' responses on the inner 3x3: -40 at the centre, +10 at its four neighbours, 0 at corners.
    assert laplacian_energy(gray(image), border=0).item() == (40**2 + 4 * 10**2) / 9
    # After a 1-pixel shave only the centre's 3x3 neighbourhood is left: one response, -40.
    assert laplacian_energy(gray(image), border=1).item() == 1600.0


def test_constants_and_ramps_have_no_laplacian_and_a_parabola_has_two():
    cols = np.arange(8)
    assert laplacian_energy(gray(np.full((6, 8), 77)), border=0).item() == 0.0
    assert laplacian_energy(gray(np.tile(10 + 3 * cols, (6, 1)) + np.arange(6)[:, None]), border=0).item() == 0.0
    # x^2 has second difference 2 everywhere: mean squared response 4.
    assert laplacian_energy(gray(np.tile(cols**2, (6, 1))), border=0).item() == 4.0


def test_rgb_is_measured_on_matlab_y_like_scipy(hr_crop):
    y = to_y(hr_crop).numpy()[4:-4, 4:-4]
    expected = np.mean(convolve2d(y, LAPLACIAN_5, mode="valid") ** 2)
    assert laplacian_energy(hr_crop, border=4).item() == pytest.approx(expected, rel=1e-12)


def test_batched_equals_one_by_one(baby_pair):
    hr, _ = baby_pair
    batch = torch.stack([hr[:, :64, :64], hr[:, 100:164, 300:364]])
    values = laplacian_energy(batch)
    assert values.shape == (2,)
    assert values.tolist() == [laplacian_energy(batch[0]).item(), laplacian_energy(batch[1]).item()]


def test_too_small_and_mismatched_images_are_refused():
    with pytest.raises(ValueError, match="too small"):
        laplacian_energy(torch.zeros(1, 10, 10, dtype=torch.uint8), border=4)
    with pytest.raises(ValueError, match="differ in shape"):
        hf_energy_ratio(torch.zeros(1, 20, 20, dtype=torch.uint8), torch.zeros(1, 20, 24, dtype=torch.uint8))
    with pytest.raises(TypeError, match="uint8"):
        laplacian_energy(torch.zeros(3, 20, 20))


def test_a_flat_hr_gives_inf():
    flat = torch.full((1, 16, 16), 9, dtype=torch.uint8)
    assert math.isinf(hf_energy_ratio(gray(np.tile(np.arange(16) ** 2 % 7, (16, 1))), flat).item())


# -- ratios ------------------------------------------------------------------------------------------
def test_hr_against_itself_is_one(baby_pair):
    hr, _ = baby_pair
    assert hf_energy_ratio(hr, hr).item() == 1.0
    assert spectral_hf_ratio(hr, hr).item() == 1.0


def test_blurring_lowers_the_ratio(baby_pair):
    hr, _ = baby_pair
    ratios = [hf_energy_ratio(binomial_blur(hr, n), hr).item() for n in (1, 2, 4)]
    spectral = [spectral_hf_ratio(binomial_blur(hr, n), hr).item() for n in (1, 2, 4)]
    assert 1 > ratios[0] > ratios[1] > ratios[2] > 0
    assert 1 > spectral[0] > spectral[1] > spectral[2] > 0


# Laplacian (SR / HR) and spectral ratios of 4x upscalings of the Set5 LR files (exact arithmetic:
# the Laplacian ratios are pinned to 1e-4). Bicubic keeps a few percent of HR's high frequencies;
# nearest neighbour's 4x4 blocks add hard edges, up to twice HR's Laplacian energy on img_002 (bird),
# but a quarter of it on img_004 (head), whose HR is grainy.
SET5_RATIOS = {
    "img_001": {"bicubic": (0.0409, 0.0614), "nearest": (1.2746, 1.1102)},
    "img_002": {"bicubic": (0.0717, 0.0735), "nearest": (2.2626, 1.3725)},
    "img_003": {"bicubic": (0.0317, 0.0583), "nearest": (1.0310, 0.9805)},
    "img_004": {"bicubic": (0.0109, 0.0355), "nearest": (0.2667, 0.4785)},
    "img_005": {"bicubic": (0.0358, 0.0627), "nearest": (1.1974, 1.1521)},
}


def test_set5_bicubic_and_nearest(set5):
    assert [pair.name for pair in set5] == sorted(SET5_RATIOS)
    for pair in set5:
        hr, lr = pair.load()
        for method, (laplacian_ratio, spectral_ratio) in SET5_RATIOS[pair.name].items():
            sr = imresize(lr, 4, method=method)
            assert hf_energy_ratio(sr, hr).item() == pytest.approx(laplacian_ratio, abs=1e-4), (pair.name, method)
            assert spectral_hf_ratio(sr, hr).item() == pytest.approx(spectral_ratio, abs=1e-4), (pair.name, method)
        assert SET5_RATIOS[pair.name]["bicubic"][0] < 0.1  # clearly smoother than HR


# -- spectral share by hand --------------------------------------------------------------------------
def cosine_image(cycles: list[int], size: int = 64) -> torch.Tensor:
    """Sum of equal-amplitude vertical cosines with the given cycles per image width, in uint8."""
    x = np.arange(size) / size
    rows = sum(np.cos(2 * np.pi * c * x) for c in cycles) * (100 / len(cycles)) + 128
    return gray(np.round(np.tile(rows, (size, 1))))


def test_a_cosine_above_the_lr_nyquist_is_all_high_frequency():
    # 16 cycles in 64 pixels = 0.25 cycles/pixel > 0.125: the Hann window spreads it over 15..17 only.
    assert spectral_hf_share(cosine_image([16]), border=0).item() == pytest.approx(1.0, abs=1e-3)


def test_a_cosine_below_the_lr_nyquist_has_none():
    # 3 cycles in 64 pixels = 0.047 cycles/pixel; what is left above 0.125 is uint8 rounding noise.
    assert spectral_hf_share(cosine_image([3]), border=0).item() == pytest.approx(0.0, abs=1e-3)


def test_equal_cosines_either_side_split_the_energy():
    share = spectral_hf_share(cosine_image([3, 20]), border=0).item()
    assert share == pytest.approx(0.5, abs=2e-3)
    # The cutoff is the LR's Nyquist, 0.5 / scale cycles per HR pixel: at 2x (0.25) the split is the same
    # (0.047 < 0.25 < 0.31; only rounding noise between 0.125 and 0.25 moves); at 0.4 both are below it.
    assert spectral_hf_share(cosine_image([3, 20]), scale=2, border=0).item() == pytest.approx(share, abs=1e-4)
    assert spectral_hf_share(cosine_image([3, 20]), border=0, cutoff=0.4).item() == pytest.approx(0.0, abs=1e-3)


def test_bad_cutoff_is_refused():
    with pytest.raises(ValueError, match="cutoff"):
        spectral_hf_share(cosine_image([3]), cutoff=0.8)


# -- the pixel-shuffle grid ----------------------------------------------------------------------------
def test_the_periodic_component_is_the_energy_on_the_lattice_frequencies_like_numpy_fft():
    # Parseval: the mean square of the 4-periodic part is the power at the 15 non-zero frequencies
    # (k H / 4, l W / 4) of the 2-D DFT over (H W)^2. Catches phases averaged along the wrong axes, the
    # mean left in (the DC term), or block means taken for phase means.
    from sr_models.sharpness import periodic_component

    image = np.random.default_rng(3).normal(100, 30, (40, 36))
    spectrum = np.fft.fft2(image)
    h, w = image.shape
    lattice = [(k * h // 4, l * w // 4) for k in range(4) for l in range(4) if (k, l) != (0, 0)]
    expected = sum(abs(spectrum[i, j]) ** 2 for i, j in lattice) / (h * w) ** 2
    p = periodic_component(torch.from_numpy(image))
    assert p.shape == (4, 4) and float(p.sum()) == pytest.approx(0.0, abs=1e-9)
    assert float(p.pow(2).mean()) == pytest.approx(expected, rel=1e-9)
    with pytest.raises(ValueError, match="not whole 4x4 blocks"):
        periodic_component(torch.zeros(10, 12))


def test_grid_amplitude_of_a_planted_checkerboard_is_its_amplitude_and_blocks_have_none(baby_pair):
    from sr_models.sharpness import grid_amplitude, grid_ratio

    hr = to_y(baby_pair[0]).round().clamp(10, 245).to(torch.uint8)[None]  # one grey channel: its own Y
    h, w = hr.shape[-2:]
    checker = ((torch.arange(h).view(-1, 1) + torch.arange(w).view(1, -1)) % 2 * 2 - 1).to(torch.int16)
    flat = torch.full((1, h, w), 128, dtype=torch.int16)
    assert grid_amplitude((flat + 3 * checker).to(torch.uint8)).item() == pytest.approx(3.0, abs=1e-12)
    # Phases are counted from the shaved edge: a border that is not a multiple of 4 permutes them.
    assert grid_amplitude((flat + 3 * checker).to(torch.uint8), border=3).item() == pytest.approx(3.0, abs=1e-12)
    assert grid_ratio((hr + 3 * checker).to(torch.uint8), hr).item() > 2
    # Nearest-neighbour 4x makes 4x4 blocks of one value: high frequencies (an HF ratio of 1.27 on
    # this image) and no grid at all, as any block-constant change.
    nearest = imresize(baby_pair[1], 4, method="nearest")
    assert hf_energy_ratio(nearest, baby_pair[0]).item() > 1
    assert grid_amplitude(nearest).item() == pytest.approx(0.0, abs=1e-12)
    blocks = torch.randint(-8, 9, (h // 4, w // 4)).repeat_interleave(4, 0).repeat_interleave(4, 1)
    assert grid_ratio((hr + blocks).to(torch.uint8), hr).item() == pytest.approx(1.0, abs=1e-12)
