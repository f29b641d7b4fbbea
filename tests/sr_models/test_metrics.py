"""PSNR/SSIM conventions of MATLAB evaluation code, each on its own, then the published means."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from sr_models.datasets import find_dataset
from sr_models.metrics import psnr, psnr_from_mse, psnr_rgb, psnr_y, rgb_to_y, rmse_y, shave, ssim, ssim_y, to_y
from sr_models.resize import imresize


def rgb(r, g, b, h=1, w=1):
    return torch.tensor([r, g, b], dtype=torch.uint8).view(3, 1, 1).expand(3, h, w).contiguous()


# -- Y channel ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "color, y",
    [
        ((0, 0, 0), 16),  # studio range: black is 16...
        ((255, 255, 255), 235),  # ...and white 235
        ((255, 0, 0), 81),  # 16 + 65.481 = 81.481
        ((0, 255, 0), 145),  # 16 + 128.553 = 144.553 -> rounds up
        ((0, 0, 255), 41),  # 16 + 24.966 = 40.966
        ((100, 150, 200), 137),  # 16 + (6548.1 + 19282.95 + 4993.2) / 255 = 136.879
        # A .5 tie in exact arithmetic: MATLAB's T = (1/255) * origT gives 52.49999999999999 -> 52,
        # while origT / 255 would give 52.5 -> 53.
        ((99, 1, 108), 52),
    ],
)
def test_y_is_matlab_rgb2ycbcr_rounded(color, y):
    assert rgb_to_y(rgb(*color)).item() == y


def test_y_is_an_integer_in_studio_range():
    g = torch.Generator().manual_seed(0)
    y = rgb_to_y(torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8, generator=g))
    assert torch.equal(y, torch.round(y))
    assert y.min() >= 16 and y.max() <= 235


def test_grayscale_image_is_its_own_y():
    gray = torch.arange(0, 256, dtype=torch.uint8).view(1, 16, 16)
    assert torch.equal(to_y(gray), gray[0].to(torch.float64))  # 0 stays 0, 255 stays 255: no 16..235
    # A gray image stored as RGB is NOT its own Y: rgb2ycbcr maps it to the studio range.
    assert to_y(gray.expand(3, -1, -1)).max() == 235


def test_metrics_refuse_float_images():
    with pytest.raises(TypeError, match="uint8"):
        psnr_y(torch.zeros(3, 20, 20), torch.zeros(3, 20, 20))


# -- PSNR ----------------------------------------------------------------------------------------
def test_psnr_of_a_known_error():
    hr = torch.full((1, 20, 20), 100, dtype=torch.uint8)
    sr = hr.clone()
    sr[0, 4:16, 4:16] += 2  # MSE 4 over the 12x12 interior after shaving 4
    assert psnr_y(sr, hr).item() == pytest.approx(10 * math.log10(255**2 / 4), abs=1e-12)


def test_border_is_shaved_before_comparing():
    hr = torch.full((1, 20, 20), 100, dtype=torch.uint8)
    sr = hr.clone()
    sr[0, :4, :] = 0  # damage only the 4-pixel border
    sr[0, :, -4:] = 255
    assert psnr_y(sr, hr, border=4).item() == math.inf
    assert psnr_y(sr, hr, border=0).item() < 20
    assert psnr_y(sr, hr, border=3).item() < 30


def test_shave_refuses_images_smaller_than_the_border():
    with pytest.raises(ValueError, match="nothing left"):
        shave(torch.zeros(8, 8), 4)


def test_rgb_psnr_and_rmse():
    hr = rgb(10, 20, 30, 12, 12)
    sr = hr.clone()
    sr[0] += 10  # only R differs: MSE over all channels 100/3
    assert psnr_rgb(sr, hr, border=0).item() == pytest.approx(10 * math.log10(255**2 * 3 / 100), abs=1e-12)
    assert psnr(sr, hr, border=0, channel="rgb").item() == psnr_rgb(sr, hr, border=0).item()
    # On Y: 31.587 rounds to 32; R + 10 adds 10 * 65.481 / 255 = 2.568, and 34.155 rounds to 34.
    assert rmse_y(sr, hr, border=0).item() == pytest.approx(2.0)
    # R + 3 moves Y by 0.770 only: 32.357 still rounds to 32, so Y sees no error at all.
    small = hr.clone()
    small[0] += 3
    assert rmse_y(small, hr, border=0).item() == 0.0
    assert psnr_from_mse(1.0) == pytest.approx(20 * math.log10(255))


def test_batched_metrics_give_one_value_per_image(baby_pair):
    hr, lr = baby_pair
    sr = imresize(lr, 4)
    batch_sr = torch.stack([sr, hr])
    batch_hr = torch.stack([hr, hr])
    p = psnr_y(batch_sr, batch_hr)
    s = ssim_y(batch_sr, batch_hr)
    assert p.shape == (2,) and s.shape == (2,)
    assert p[0].item() == pytest.approx(psnr_y(sr, hr).item(), abs=1e-12)
    assert p[1].item() == math.inf
    assert s[0].item() == pytest.approx(ssim_y(sr, hr).item(), abs=1e-12)
    assert s[1].item() == pytest.approx(1.0, abs=1e-12)


# -- SSIM ----------------------------------------------------------------------------------------
def test_ssim_matches_scikit_image_configured_like_wang(baby_pair):
    # scikit-image with Gaussian weights (sigma 1.5, truncated to 11x11), population covariance and
    # the (win-1)/2 border cropped is the 'valid' ssim_index.m of Wang et al.
    hr, lr = baby_pair
    y_hr = to_y(hr)[100:300, 50:260]
    y_sr = to_y(imresize(lr, 4))[100:300, 50:260]
    ref = structural_similarity(
        y_sr.numpy(), y_hr.numpy(), gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
    )
    assert ssim(y_sr, y_hr).item() == pytest.approx(ref, abs=1e-9)


def test_ssim_constants_follow_k1_k2_and_l():
    g = torch.Generator().manual_seed(3)
    # Low-contrast images, where the stabilising constants C1 = (K1 L)^2, C2 = (K2 L)^2 dominate.
    a = 100 + torch.randint(-3, 4, (40, 40), generator=g).double()
    b = a + torch.randint(-3, 4, (40, 40), generator=g)
    default = ssim(a, b).item()
    assert ssim(a, b, k1=0.01, k2=0.03, data_range=255.0).item() == default
    assert default > 0.8
    assert ssim(a, b, data_range=1.0).item() < default - 0.2
    assert ssim(a, b, k2=0.3).item() > default
    assert ssim(a, a).item() == pytest.approx(1.0, abs=1e-12)


def test_ssim_window_is_gaussian_11_sigma_1_5():
    # A single bright pixel on a flat field: the 'valid' map has (40 - 10)^2 values, and the
    # window size decides how many of them see the pixel.
    a = torch.full((40, 40), 50.0, dtype=torch.float64)
    b = a.clone()
    b[20, 20] = 250
    from sr_models.metrics import _gaussian_1d, _ssim_map

    m = _ssim_map(a[None], b[None], _gaussian_1d(11, 1.5), 6.5025, 58.5225)[0]
    assert m.shape == (30, 30)
    affected = (m < 1 - 1e-12).nonzero()
    assert affected[:, 0].min() == 10 and affected[:, 0].max() == 20  # 11 rows of windows cover it


def test_separable_filter_equals_the_2d_fspecial_window(baby_pair):
    import torch.nn.functional as F

    from sr_models.metrics import _filter_valid, _gaussian_1d

    # fspecial('gaussian', 11, 1.5) built in 2-D from the radius, as MATLAB does.
    c = torch.arange(11, dtype=torch.float64) - 5
    w2 = torch.exp(-(c[:, None] ** 2 + c[None, :] ** 2) / (2 * 1.5**2))
    w2 = w2 / w2.sum()
    x = to_y(baby_pair[0])[:60, :70]
    direct = F.conv2d(x[None, None], w2[None, None])[0, 0]
    assert torch.allclose(_filter_valid(x, _gaussian_1d(11, 1.5)), direct, rtol=0, atol=1e-11)


def test_ssim_refuses_images_smaller_than_the_window():
    with pytest.raises(ValueError, match="smaller than the 11px SSIM window"):
        ssim(torch.zeros(10, 30), torch.zeros(10, 30))


# -- published means ------------------------------------------------------------------------------
# Bicubic and nearest PSNR: SelfExSR's MATLAB tables, as the SRGAN paper reprints them (Table 2 NN;
# bicubic 28.42 / 25.99 / 25.96). Bicubic SSIM on Y without downsampling: 0.8104 / 0.7027 / 0.6675 as
# printed in e.g. EDSR and RCAN (Lim et al. 2017; Zhang et al. 2018); their pipelines compute Y in
# floating point rather than rounded, which moves SSIM by ~3e-4, inside the 1e-3 tolerance.
PUBLISHED = {
    ("bicubic", "Set5"): (28.42, 0.8104),
    ("bicubic", "Set14"): (25.99, 0.7027),
    ("bicubic", "BSD100"): (25.96, 0.6675),
    ("nearest", "Set5"): (26.26, None),
    ("nearest", "Set14"): (24.64, None),
    ("nearest", "BSD100"): (25.02, None),
}


@pytest.mark.parametrize("method, dataset", sorted(PUBLISHED))
def test_published_means_on_all_119_test_images(datasets_root, method, dataset):
    ds = find_dataset(dataset, datasets_root)
    psnrs, ssims = [], []
    for pair in ds:
        hr, lr = pair.load()
        sr = imresize(lr, 4, method=method)
        psnrs.append(psnr_y(sr, hr).item())
        ssims.append(ssim_y(sr, hr).item())
    published_psnr, published_ssim = PUBLISHED[(method, dataset)]
    if method == "nearest":
        # MATLAB 'nearest' at 4x is pixel replication (tested exactly in test_resize). The paper's NN
        # images came with SelfExSR's material, made by a tool it does not name; our means differ
        # from its table by up to 0.0103 dB (Set5 26.2497 vs 26.26, BSD100 25.0332 vs 25.02).
        assert abs(np.mean(psnrs) - published_psnr) < 0.015
        return
    assert abs(np.mean(psnrs) - published_psnr) < 0.01
    if published_ssim is not None:
        assert abs(np.mean(ssims) - published_ssim) < 0.001


def test_psnr_ssim_y_equals_the_separate_functions(baby_pair):
    from sr_models.metrics import psnr_ssim_y

    hr, lr = baby_pair
    sr = imresize(lr, 4)
    p, s = psnr_ssim_y(sr, hr)
    assert p.item() == psnr_y(sr, hr).item() and s.item() == ssim_y(sr, hr).item()
