"""DISTS: its parts checked by hand, the whole against the authors' DISTS_pytorch 0.1 run on the same VGG16.

Each test names, in its docstring, the wrong implementation it would catch.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from sr_models import dists as D
from sr_models.datasets import find_dataset
from sr_models.resize import imresize

REFERENCE = json.loads((Path(__file__).parent / "data" / "dists_reference.json").read_text())


def test_l2_pooling_window_is_the_inner_hanning_3x3():
    """Catches np.hanning(3) (= [0, 1, 0], no blur), the full 5x5 window, or no normalisation."""
    expected = torch.tensor([[1.0, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16
    assert torch.allclose(D.hanning_window(), expected, atol=1e-7)


def test_l2_pooling_is_a_root_mean_square_with_zero_padding():
    """Catches max-pooling (the corner would stay 2), 'valid' convolution (3 rows, not 4), replicate padding."""
    pool = D.L2Pool(1)
    out = pool(torch.full((1, 1, 7, 7), 2.0))
    assert out.shape == (1, 1, 4, 4)  # ceil(7 / 2): stride 2, padding 1
    assert out[0, 0, 1, 1].item() == pytest.approx(2.0, abs=1e-6)  # interior: sqrt(4 * 1) = 2
    assert out[0, 0, 0, 0].item() == pytest.approx(2.0 * 0.75, abs=1e-6)  # corner: sqrt(4 * 9 / 16)
    assert out[0, 0, 0, 1].item() == pytest.approx(2.0 * (12 / 16) ** 0.5, abs=1e-6)  # edge: 12/16 inside


def test_learned_weights_are_dists_pytorch_0_1_normalised():
    """Catches random or unnormalised alpha/beta (the reference divides both by their joint sum)."""
    model = D.load_dists("cpu")
    assert model.alpha.shape == model.beta.shape == (1, 1475, 1, 1)
    assert (model.alpha.sum() + model.beta.sum()).item() == pytest.approx(1.0, abs=1e-12)
    assert bool((model.alpha >= 0).all() and (model.beta >= 0).all())


def test_identical_images_are_at_zero_and_the_measure_is_symmetric(hr_crop):
    """Catches a missing '1 -', constants c1/c2 in the wrong place, or terms that favour one input."""
    rng = torch.Generator().manual_seed(3)
    other = (hr_crop.float() + 25 * torch.randn(hr_crop.shape, generator=rng)).clamp(0, 255).to(torch.uint8)
    assert abs(D.dists(hr_crop, hr_crop, 0).item()) < 1e-12
    forward, backward = D.dists(other, hr_crop, 0).item(), D.dists(hr_crop, other, 0).item()
    assert forward == pytest.approx(backward, abs=1e-9)
    assert 0.05 < forward < 1


def _case_image(case, datasets_root):
    hr, lr = find_dataset(case["dataset"], datasets_root).pair(case["image"]).load()
    if case["method"] == "hr":
        return hr, hr
    if case["method"] == "noise":
        g = torch.Generator().manual_seed(0)
        noisy = (hr.float() + 20 * torch.randn(hr.shape, generator=g)).round().clamp(0, 255).to(torch.uint8)
        return noisy, hr
    return imresize(lr, 4, method=case["method"]), hr


@pytest.mark.parametrize("case", REFERENCE["cases"], ids=lambda c: f"{c['dataset']}-{c['image']}-{c['method']}")
def test_equals_the_reference_implementation(case, datasets_root):
    """Against the authors' DISTS_pt.py 0.1 (fixture provenance in the JSON): within 1e-4 required, 7e-8
    measured. Catches max-pooling instead of L2 pooling (0.01-0.05 off), a normalised input as the first
    representation, a missing stage, and gray images not seen as RGB (Set14 img_003 is grayscale)."""
    sr, hr = _case_image(case, datasets_root)
    assert D.dists(sr, hr, case["border"]).item() == pytest.approx(case["dists_reference"], abs=1e-6)


def test_batches_borders_and_errors(hr_crop, tmp_path, monkeypatch):
    other = hr_crop.flip(-1).contiguous()
    batch = D.dists(torch.stack([other, hr_crop]), torch.stack([hr_crop, hr_crop]), 4)
    assert batch.shape == (2,) and batch[0].item() == pytest.approx(D.dists(other, hr_crop, 4).item(), abs=1e-9)
    assert D.dists(other, hr_crop, 4).item() == pytest.approx(
        D.dists(other[:, 4:-4, 4:-4], hr_crop[:, 4:-4, 4:-4], 0).item(), abs=1e-12
    )
    with pytest.raises(ValueError, match="differ in shape"):
        D.dists(hr_crop, hr_crop[:, :-1], 0)
    with pytest.raises(ValueError, match="at least 16x16"):
        D.dists(hr_crop[:, :20, :20], hr_crop[:, :20, :20], 4)
    with pytest.raises(TypeError, match="uint8"):
        D.dists(hr_crop.float(), hr_crop.float())
    bogus = tmp_path / "weights.pt"
    torch.save({"alpha": torch.ones(1, 1475, 1, 1), "beta": torch.ones(1, 1475, 1, 1)}, bogus)
    with pytest.raises(D.DISTSWeightsError, match="not DISTS_pytorch 0.1's"):
        D.DISTS(weights_path=bogus)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(D.DISTSWeightsError, match=r"pip install --no-deps DISTS_pytorch==0.1"):
        D.find_dists_weights()
