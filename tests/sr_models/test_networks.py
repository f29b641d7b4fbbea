"""SRResNet and the SRGAN discriminator against the paper's description (Figure 4)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sr_models.networks import NETWORKS, Discriminator, SRResNet


def count(module):
    return sum(p.numel() for p in module.parameters())


def test_srresnet_has_the_papers_size():
    g = SRResNet()
    # 1.55 M parameters: 16 blocks x (2 convs 3x3/64 + 2 BN + PReLU) dominate.
    assert count(g) == 1_550_659
    convs = [m for m in g.modules() if isinstance(m, nn.Conv2d)]
    assert convs[0].kernel_size == (9, 9) and convs[0].out_channels == 64
    assert convs[-1].kernel_size == (9, 9) and convs[-1].out_channels == 3
    assert len(g.blocks) == 16
    assert sum(isinstance(m, nn.PixelShuffle) for m in g.modules()) == 2
    assert sum(isinstance(m, nn.BatchNorm2d) for m in g.modules()) == 33  # 2 per block + after the blocks


def test_srresnet_upscales_any_size_by_four():
    g = SRResNet().eval()
    with torch.no_grad():
        assert g(torch.rand(2, 3, 7, 13)).shape == (2, 3, 28, 52)


def test_residual_blocks_start_as_identity_and_keep_their_skip():
    g = SRResNet().eval()
    x = torch.randn(1, 64, 5, 5)
    with torch.no_grad():
        # Zero-gamma init: each residual branch starts at zero, so the block is the identity...
        assert torch.equal(g.blocks[0](x), x)
        # ...and once its branch is non-zero, the skip still adds the input.
        nn.init.ones_(g.blocks[0].body[4].weight)
        branch = g.blocks[0].body(x)
        assert branch.abs().sum() > 0
        assert torch.allclose(g.blocks[0](x), x + branch)


def test_discriminator_takes_96_pixel_crops():
    d = Discriminator()
    convs = [m for m in d.features if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 512, 512]
    assert [c.stride[0] for c in convs] == [1, 2, 1, 2, 1, 2, 1, 2]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in d.features) == 7  # none after the first conv
    dense = [m for m in d.classifier if isinstance(m, nn.Linear)]
    assert dense[0].in_features == 512 * 6 * 6 and dense[0].out_features == 1024 and dense[1].out_features == 1
    assert d(torch.rand(3, 3, 96, 96) * 2 - 1).shape == (3,)


def test_discriminator_refuses_other_sizes_clearly():
    with pytest.raises(ValueError, match="built for 96x96 crops, got 128x128"):
        Discriminator()(torch.rand(1, 3, 128, 128))
    with pytest.raises(ValueError, match="multiple of 16"):
        Discriminator(input_size=100)
    assert Discriminator(input_size=48)(torch.rand(2, 3, 48, 48)).shape == (2,)


def test_registry():
    assert NETWORKS == {"srresnet": SRResNet, "discriminator": Discriminator}
    with pytest.raises(ValueError, match="power of two"):
        SRResNet(scale=3)
