"""Tiled inference equals untiled inference; weights files are checked and errors are clear."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from sr_models.inference import WeightsError, load_generator, receptive_radius_lr, save_generator, upscale
from sr_models.networks import SRResNet


@pytest.fixture(scope="module")
def generator():
    torch.manual_seed(0)
    g = SRResNet().eval()
    # Non-trivial BN statistics and scales, as a trained network has (the zero-gamma init would
    # otherwise switch the residual body off, and with it most of the receptive field).
    for m in g.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.normal_(1.0, 0.2)
    return g.requires_grad_(False)


def test_receptive_radius_covers_the_architecture(generator):
    # 9x9 head (4) + 33 3x3 convs at LR (33) + first upsampling conv (1) + one at 2x (0.5) + 9x9
    # tail at 4x (1): 39.5 LR pixels.
    assert receptive_radius_lr(generator) == 40


def test_tiled_equals_untiled(generator, baby_pair):
    _, lr = baby_pair
    lr = lr[:, 10:80, 20:103]  # 70 x 83: tiles of 32 leave ragged edges on both axes
    whole = upscale(generator, lr, tile=None)
    tiled = upscale(generator, lr, tile=32)
    assert tiled.shape == (3, 280, 332) and tiled.dtype == torch.uint8
    assert torch.equal(tiled, whole)


def test_a_too_small_margin_would_show(generator, baby_pair):
    # The check above can fail: with no margin, tile seams differ.
    _, lr = baby_pair
    lr = lr[:, :64, :64]
    assert not torch.equal(upscale(generator, lr, tile=32, margin=0), upscale(generator, lr, tile=None))


def test_batched_equals_single(generator, baby_pair):
    _, lr = baby_pair
    a, b = lr[:, :24, :24], lr[:, 50:74, 60:84]
    out = upscale(generator, torch.stack([a, b]), tile=None)
    assert torch.equal(out[0], upscale(generator, a, tile=None))
    assert torch.equal(out[1], upscale(generator, b, tile=None))


def test_grayscale_in_grayscale_out(generator):
    gray = torch.randint(0, 256, (1, 20, 20), dtype=torch.uint8)
    out = upscale(generator, gray)
    assert out.shape == (1, 80, 80)
    rgb = upscale(generator, gray.expand(3, -1, -1).contiguous())
    mean = torch.floor(rgb.double().mean(0, keepdim=True) + 0.5)
    assert (out.double() - mean).abs().max() <= 1  # channel mean, rounded before vs after uint8


def test_upscale_refuses_float_input(generator):
    with pytest.raises(TypeError, match="uint8"):
        upscale(generator, torch.rand(3, 8, 8))


def test_save_and_load_round_trip(tmp_path, generator, baby_pair):
    path = save_generator(generator, tmp_path / "g.safetensors", {"variant": "test"})
    loaded = load_generator(path)
    _, lr = baby_pair
    assert torch.equal(upscale(loaded, lr[:, :30, :30]), upscale(generator, lr[:, :30, :30]))
    assert not loaded.training


def test_corrupt_weights_file(tmp_path):
    bad = tmp_path / "g.safetensors"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(WeightsError, match="g.safetensors: not a readable safetensors file"):
        load_generator(bad)


def test_truncated_weights_file(tmp_path, generator):
    path = save_generator(generator, tmp_path / "g.safetensors")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="not a readable safetensors file"):
        load_generator(path)


def test_mismatched_weights_file(tmp_path):
    save_file({"conv.weight": torch.zeros(3, 3)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(WeightsError, match=r"does not fit SRResNet.*missing \['blocks.0"):
        load_generator(tmp_path / "other.safetensors")


def test_wrong_hash_is_refused(tmp_path, generator):
    path = save_generator(generator, tmp_path / "g2.safetensors")
    with pytest.raises(WeightsError, match="differs from the model card"):
        load_generator(path, expected_sha256="0" * 64)


def test_missing_file(tmp_path):
    with pytest.raises(WeightsError, match="weights file not found"):
        load_generator(tmp_path / "none.safetensors")


def test_nan_weights_are_refused(tmp_path, generator):
    state = {k: v.clone() for k, v in generator.state_dict().items()}
    state["tail.weight"][0, 0, 0, 0] = float("nan")
    save_file(state, str(tmp_path / "nan.safetensors"), metadata={"n_blocks": "16", "channels": "64", "scale": "4"})
    with pytest.raises(WeightsError, match="tail.weight holds NaN"):
        load_generator(tmp_path / "nan.safetensors")


def test_a_replaced_file_is_read_again(tmp_path, generator):
    path = save_generator(generator, tmp_path / "g.safetensors")
    first = load_generator(path)
    other = SRResNet().eval()
    save_generator(other, path)
    second = load_generator(path)
    assert second is not first
    assert torch.equal(second.tail.weight, other.tail.weight)
    assert load_generator(path) is second  # cached while unchanged


def test_precision_is_checked_and_cpu_runs_fp32_either_way(generator, baby_pair):
    _, lr = baby_pair
    lr = lr[:, :24, :24]
    with pytest.raises(ValueError, match="precision"):
        upscale(generator, lr, precision="fp16")
    assert torch.equal(upscale(generator, lr, precision="bf16"), upscale(generator, lr))

