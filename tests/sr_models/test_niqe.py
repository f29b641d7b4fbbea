"""NIQE: each MATLAB convention of the release checked by hand, then the whole pipeline against BasicSR.

Each test names, in its docstring, the wrong implementation it would catch.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.special import gamma

from sr_models import niqe as N
from sr_models.datasets import find_dataset
from sr_models.metrics import rgb_to_y, shave
from sr_models.resize import imresize

REFERENCE = json.loads((Path(__file__).parent / "data" / "niqe_basicsr_reference.json").read_text())


def _rgb(*pixels) -> torch.Tensor:
    return torch.tensor(pixels, dtype=torch.uint8).T.reshape(3, 1, len(pixels))


def test_rgb2gray_has_matlabs_weights_and_rounds():
    """Catches BT.601's rounded 0.299/0.587/0.114 (either pixel flips), truncation instead of rounding,
    and rgb2ycbcr's Y (16..235). (Half away from zero vs half to even cannot be told apart here: with
    these 15-digit weights no uint8 RGB lands on an exact .5.)"""
    # (177, 10, 208): 0.298936021293775*177 + 0.587043074451121*10 + 0.114020904255103*208 = 82.4985 -> 82
    #                 (0.299/0.587/0.114 give 82.505 -> 83)
    # (41, 48, 176): 60.5021 -> 61 (0.299/0.587/0.114: 60.499 -> 60)
    # (0, 255, 0): 149.696 -> 150 (truncation: 149); (255, 255, 255) -> 255 (rgb2ycbcr: 235)
    gray = N.rgb_to_gray(_rgb((177, 10, 208), (41, 48, 176), (0, 255, 0), (255, 255, 255), (0, 0, 0)))
    assert gray.tolist() == [[82.0, 61.0, 150.0, 255.0, 0.0]]
    assert gray.dtype == np.float64


def test_a_grayscale_image_is_its_own_gray():
    """Catches a gray image pushed through a colour conversion (e.g. replicated to RGB and weighted)."""
    image = torch.arange(0, 256, dtype=torch.uint8).reshape(1, 16, 16)
    assert np.array_equal(N.rgb_to_gray(image), image[0].numpy().astype(np.float64))
    assert np.array_equal(N.rgb_to_gray(image[0]), image[0].numpy().astype(np.float64))
    with pytest.raises(TypeError, match="uint8"):
        N.rgb_to_gray(image.float())


def test_gaussian_window_is_fspecial_7_by_7_sigma_7_6():
    """Catches sigma 7/6 read as 1.5 or 7//6, a 5x5 window, or no normalisation."""
    w = N.gaussian_window()
    one_d = np.exp(-(np.arange(-3, 4) ** 2) / (2 * (7 / 6) ** 2))
    assert w.shape == (7, 7)
    assert w[3, 3] == pytest.approx(1 / one_d.sum() ** 2, rel=1e-14)
    assert w[0, 0] == pytest.approx(math.exp(-18 / (2 * (7 / 6) ** 2)) / one_d.sum() ** 2, rel=1e-14)
    assert w.sum() == pytest.approx(1.0, abs=1e-15)
    # The same numbers as the window BasicSR ships beside the pristine model.
    with np.load(N.PARAMS_PATH) as data:
        assert np.abs(w - data["gaussian_window"]).max() < 1e-16


def test_filtering_repeats_the_edge_pixel():
    """Catches zero padding, symmetric ('reflect') padding and wrap-around at the borders."""
    image = np.zeros((9, 9))
    image[0, 0] = 1.0
    one_d = np.exp(-(np.arange(-3, 4) ** 2) / (2 * (7 / 6) ** 2))
    one_d /= one_d.sum()
    out = N.filter_replicate(image, N.gaussian_window())
    # Replicate: window offsets -3..0 of both axes all land on pixel (0, 0).
    assert out[0, 0] == pytest.approx(one_d[:4].sum() ** 2, rel=1e-12)
    # (zero padding would give one_d[3]**2 = 0.1174, symmetric (one_d[2] + one_d[3])**2 = 0.3363)
    assert out[0, 0] == pytest.approx(0.4507, abs=1e-4)
    # Far corner: nothing of (0, 0) reaches it, so no wrap-around.
    assert out[8, 8] == 0.0


def test_mscn_divides_by_sigma_plus_one():
    """Catches (I - mu) / sigma (no +1): a constant image would give NaN instead of zeros."""
    flat = np.full((20, 20), 77.0)
    assert np.allclose(N.mscn(flat), 0.0, rtol=0, atol=1e-12)
    step = np.zeros((20, 20))
    step[:, 10:] = 100.0
    mu = N.filter_replicate(step, N.gaussian_window())
    sigma = np.sqrt(np.abs(N.filter_replicate(step**2, N.gaussian_window()) - mu**2))
    assert N.mscn(step)[5, 10] == pytest.approx((100 - mu[5, 10]) / (sigma[5, 10] + 1), rel=1e-12)


def test_gamma_grid_is_0_2_to_10_by_0_001():
    """Catches a grid that stops short of 10 (np.arange(0.2, 10, 0.001)), a coarser step or another start."""
    grid = N.GAMMA_GRID
    assert len(grid) == 9801
    assert grid[0] == 0.2 and grid[-1] == 10.0
    assert np.allclose(np.diff(grid), 0.001, rtol=0, atol=1e-12)
    assert N.matlab_colon(0.2, 0.001, 10.0)[4900] == pytest.approx(5.1, abs=1e-14)


def test_aggd_of_two_values_hits_the_grid_end():
    """Catches a grid ending below 10: for +-1 the moment ratio is 1, reached only as alpha -> inf, so
    the fit is the grid's last point, and beta = sqrt(Gamma(0.1) / Gamma(0.3))."""
    alpha, beta_l, beta_r = N.estimate_aggd(np.array([-1.0, 1.0] * 50))
    assert alpha == 10.0
    assert beta_l == beta_r == pytest.approx(math.sqrt(gamma(0.1) / gamma(0.3)), rel=1e-12)


@pytest.mark.parametrize("target", [2.0, 1.2342, 3.4567])
def test_aggd_shape_is_the_nearest_grid_point(target):
    """Catches a step of 0.01 (1.2342 -> 1.23, not 1.234) and a fit by another estimator.

    A symmetric sample of values +-1 and +-t has (E|x|)^2 / E[x^2] = (1 + t)^2 / (2 (1 + t^2)); t is
    chosen so this equals r(target) = Gamma(2/a)^2 / (Gamma(1/a) Gamma(3/a)) at a = target."""
    r = gamma(2 / target) ** 2 / (gamma(1 / target) * gamma(3 / target))
    # (1 + t)^2 = 2 r (1 + t^2)  <=>  (1 - 2r) t^2 + 2 t + (1 - 2r) = 0, root with t > 1
    a = 1 - 2 * r
    t = (-2 - math.sqrt(4 - 4 * a * a)) / (2 * a)
    vec = np.array([-1.0, 1.0, -t, t])
    alpha, beta_l, beta_r = N.estimate_aggd(vec)
    assert alpha == pytest.approx(round(target, 3), abs=1e-12)
    std = math.sqrt((1 + t * t) / 2)
    assert beta_l == pytest.approx(std * math.sqrt(gamma(1 / alpha) / gamma(3 / alpha)), rel=1e-12)


def test_one_signed_sample_gives_nan_scales_and_the_first_grid_point():
    """Catches an implementation that drops or zero-fills the empty side (MATLAB: mean([]) = NaN, and
    min of an all-NaN vector is at index 1, so alpha = 0.2)."""
    alpha, beta_l, beta_r = N.estimate_aggd(np.array([0.5, 1.0, 2.0]))
    assert math.isnan(beta_l) and not math.isnan(beta_r) and alpha == 0.2
    alpha, beta_l, beta_r = N.estimate_aggd(np.zeros(10))
    assert alpha == 0.2 and math.isnan(beta_l) and math.isnan(beta_r)


def test_nanmean_and_nancov_drop_nan_as_matlab():
    """Catches np.mean/np.cov over NaN (NaN NIQE), NaN rows dropped from the mean too (nanmean keeps the
    row's other values), and cov normalised by n instead of n - 1."""
    rng = np.random.default_rng(1)
    features = rng.normal(size=(6, 36))
    features[2, 5] = np.nan
    mu_p, cov_p = np.zeros(36), np.eye(36)
    complete = features[[0, 1, 3, 4, 5]]
    mean = np.array([features[~np.isnan(features[:, k]), k].mean() for k in range(36)])
    cov = (complete - complete.mean(0)).T @ (complete - complete.mean(0)) / 4
    expected = math.sqrt(mean @ np.linalg.inv((cov_p + cov) / 2) @ mean)
    assert N.mvg_distance(features, mu_p, cov_p) == pytest.approx(expected, rel=1e-10)
    with pytest.raises(ValueError, match="at least two blocks"):
        N.mvg_distance(np.vstack([features[:1], np.full((3, 36), np.nan)]), mu_p, cov_p)


def test_pinv_uses_matlabs_tolerance():
    """Catches np.linalg.pinv's default cut-off (1e-15 x norm), 36x lower than MATLAB's for 36x36."""
    a = np.diag([1.0] + [3e-15] * 35)
    p = N.matlab_pinv(a)
    assert p[0, 0] == pytest.approx(1.0) and np.abs(p[1:, 1:]).max() == 0.0
    assert np.linalg.pinv(a)[1, 1] == pytest.approx(1 / 3e-15)  # what the numpy default would keep


def test_blocks_are_cropped_at_the_bottom_and_right(baby_pair):
    """Catches centre cropping, padding to whole blocks, and partial blocks scored."""
    hr, _ = baby_pair
    image = hr[:, :250, :300].clone()  # 2 x 3 whole blocks; rows 192.., columns 288.. are dropped
    assert N.niqe_features(N.rgb_to_gray(image)).shape == (6, 36)
    base = N.niqe(image)
    outside = image.clone()
    outside[:, 192:, :] = 0
    outside[:, :, 288:] = 255
    assert N.niqe(outside) == base
    inside = image.clone()
    inside[:, :8, :8] = 0
    assert N.niqe(inside) != base


def test_second_scale_is_matlab_imresize_half(baby_pair):
    """Catches a 2x2 average or a plain decimation in place of imresize(I, 0.5) (bicubic, antialiased)."""
    hr, _ = baby_pair
    gray = N.rgb_to_gray(hr[:, :192, :192])
    features = N.niqe_features(gray)
    half = imresize(torch.from_numpy(gray), 0.5, method="bicubic").numpy()
    coeffs = N.mscn(half)
    assert np.allclose(features[0, 18:], N.block_features(coeffs[:48, :48]), rtol=0, atol=1e-12)
    averaged = gray.reshape(96, 2, 96, 2).mean(axis=(1, 3))
    assert not np.allclose(features[0, 18:], N.block_features(N.mscn(averaged)[:48, :48]), atol=1e-3)


def test_border_is_removed_before_everything(baby_pair):
    hr, _ = baby_pair
    assert N.niqe(hr, border=4) == N.niqe(hr[:, 4:-4, 4:-4].contiguous())


def test_pristine_model_is_the_release_model():
    """The shipped numbers are the release's modelparameters.mat (as BasicSR carries them)."""
    mu, cov = N.load_pristine_params()
    assert mu.shape == (36,) and cov.shape == (36, 36)
    assert mu[0] == pytest.approx(2.60131368, abs=1e-8)  # shape parameter of pristine MSCN blocks
    assert np.allclose(cov, cov.T)


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="at least one 96x96 block"):
        N.niqe(torch.zeros(3, 95, 400, dtype=torch.uint8))
    with pytest.raises(N.NIQEParamsError, match="cannot read"):
        N.niqe(torch.zeros(3, 200, 200, dtype=torch.uint8), params_path=tmp_path / "missing.npz")
    np.savez(tmp_path / "bad.npz", mu_pris_param=np.zeros(18), cov_pris_param=np.eye(18))
    with pytest.raises(N.NIQEParamsError, match="36-vector"):
        N.niqe(torch.zeros(3, 200, 200, dtype=torch.uint8), params_path=tmp_path / "bad.npz")


def _case_image(case, datasets_root):
    hr, lr = find_dataset(case["dataset"], datasets_root).pair(case["image"]).load()
    return hr if case["method"] == "hr" else imresize(lr, 4, method="bicubic")


@pytest.mark.parametrize("case", REFERENCE["cases"], ids=lambda c: f"{c['dataset']}-{c['image']}-{c['method']}-{c['channel']}")
def test_whole_pipeline_equals_basicsr_in_double(case, datasets_root):
    """Against BasicSR 1.4.2's own niqe() in float64 (the fixture's provenance). Agreement is 1.5e-5 at
    worst (Set5 img_002: BasicSR's imresize weights), 1e-13 elsewhere; 1e-4 is far below the effect of
    any convention above (BasicSR's float32 moves Set5 img_004 by 0.34)."""
    image = _case_image(case, datasets_root)
    if case["channel"] == "gray":
        value = N.niqe(image, case["border"])
    else:
        mu, cov = N.load_pristine_params()
        value = N.mvg_distance(N.niqe_features(shave(rgb_to_y(image), case["border"]).numpy()), mu, cov)
    assert value == pytest.approx(case["basicsr_float64"], abs=1e-4)


def test_published_matlab_value_of_baboon(datasets_root):
    """BasicSR reports MATLAB R2021a's NIQE of baboon (Set14 img_001) on its rgb2ycbcr Y, border 0, as
    5.72957338. We get 5.72996 in double, as BasicSR's own code does in double (5.7299602); its float32
    code gives 5.72957, so the 4e-4 gap is precision, not a convention (a wrong convention moves NIQE by
    0.02 or more: rgb2gray instead of Y gives 5.7497)."""
    image = find_dataset("Set14", datasets_root).pair("img_001").load()[0]
    mu, cov = N.load_pristine_params()
    value = N.mvg_distance(N.niqe_features(rgb_to_y(image).numpy()), mu, cov)
    assert value == pytest.approx(REFERENCE["published"]["set14_img_001_y_border0_matlab_r2021a"], abs=5e-4)
    assert N.niqe(image) == pytest.approx(5.7497, abs=1e-4)
