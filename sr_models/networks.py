"""SRResNet generator and SRGAN discriminator (Ledig et al., CVPR 2017, Figure 4).

References
----------
.. [1] C. Ledig et al., "Photo-Realistic Single Image Super-Resolution Using a Generative Adversarial
       Network", CVPR 2017, arXiv:1609.04802.
.. [2] W. Shi et al., "Real-Time Single Image and Video Super-Resolution Using an Efficient Sub-Pixel
       Convolutional Neural Network", CVPR 2016 (the sub-pixel upsampling).
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["ResidualBlock", "SRResNet", "Discriminator", "NETWORKS"]


class ResidualBlock(nn.Module):
    """conv3x3 -> BN -> PReLU -> conv3x3 -> BN, plus the identity skip."""

    def __init__(self, channels: int = 64):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.BatchNorm2d(channels),
            nn.PReLU(channels),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class _UpsampleX2(nn.Sequential):
    """conv3x3 to 4x the maps -> PixelShuffle(2) -> PReLU (the paper's sub-pixel stage)."""

    def __init__(self, channels: int = 64):
        super().__init__(
            nn.Conv2d(channels, channels * 4, 3, padding=1),
            nn.PixelShuffle(2),
            nn.PReLU(channels),
        )


class SRResNet(nn.Module):
    """The SRGAN generator.

    Input LR in ``[0, 1]``, shape ``(N, 3, H, W)``; output ``(N, 3, scale*H, scale*W)`` aimed at HR in
    ``[-1, 1]``. The paper does not state the output activation; we use none (linear) so the MSE
    gradient does not vanish near black and white as it would behind a tanh, and clamp at inference.

    Parameters
    ----------
    n_blocks : int
        Residual blocks, 16 in the paper.
    channels : int
        Feature maps, 64 in the paper.
    scale : int
        Upscaling factor, a power of two (one sub-pixel x2 stage per factor of 2).
    """

    def __init__(self, n_blocks: int = 16, channels: int = 64, scale: int = 4, in_channels: int = 3):
        super().__init__()
        if scale < 2 or scale & (scale - 1):
            raise ValueError(f"scale must be a power of two >= 2, got {scale}")
        self.scale = scale
        self.head = nn.Sequential(nn.Conv2d(in_channels, channels, 9, padding=4), nn.PReLU(channels))
        self.blocks = nn.Sequential(*[ResidualBlock(channels) for _ in range(n_blocks)])
        self.body_tail = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels))
        self.upsample = nn.Sequential(*[_UpsampleX2(channels) for _ in range(int(math.log2(scale)))])
        self.tail = nn.Conv2d(channels, in_channels, 9, padding=4)
        self._init_weights()

    def _init_weights(self) -> None:
        # Kaiming init for the convolutions, and the "zero-gamma" trick (Goyal et al. 2017) for the
        # BN that closes each residual branch and the one after the blocks: the network starts as its
        # shallow path (head -> upsampling -> tail) and the residual body is learned on top. Measured
        # on 400 CPU steps (batch 16, lr 2e-4): MSE 0.035 vs 0.048 with default BN init; scaling the
        # conv weights instead (as BasicSR does for BN-free nets) does nothing here, BN undoes it.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, a=0.25, nonlinearity="leaky_relu")
                nn.init.zeros_(module.bias)
        for block in self.blocks:
            nn.init.zeros_(block.body[4].weight)
        nn.init.zeros_(self.body_tail[1].weight)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        features = self.head(lr)
        x = self.body_tail(self.blocks(features)) + features
        return self.tail(self.upsample(x))


class Discriminator(nn.Module):
    """The SRGAN discriminator for ``input_size`` x ``input_size`` crops (96 in the paper).

    Eight 3x3 convolutions (64, 64, 128, 128, 256, 256, 512, 512 maps, strides 1, 2, 1, 2, ...), BN on
    all but the first, LeakyReLU(0.2), then Dense(1024), LeakyReLU(0.2), Dense(1). Returns the *logit*:
    the paper's final sigmoid is applied inside the loss (``binary_cross_entropy_with_logits``), which
    is the same function computed without overflow when D is confident.

    Input is HR-range ``[-1, 1]``, shape ``(N, 3, input_size, input_size)``.
    """

    def __init__(self, input_size: int = 96, in_channels: int = 3, base_channels: int = 64):
        super().__init__()
        if input_size % 16:
            raise ValueError(f"input_size must be a multiple of 16 (four stride-2 convs), got {input_size}")
        self.input_size = input_size
        layers: list[nn.Module] = []
        channels = in_channels
        for i in range(8):
            out_channels = base_channels * 2 ** (i // 2)
            stride = 1 if i % 2 == 0 else 2
            layers.append(nn.Conv2d(channels, out_channels, 3, stride=stride, padding=1))
            if i > 0:
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            channels = out_channels
        self.features = nn.Sequential(*layers)
        spatial = input_size // 16
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels * spatial * spatial, 1024),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(1024, 1),
        )

    def forward(self, hr: torch.Tensor) -> torch.Tensor:
        if hr.shape[-2:] != (self.input_size, self.input_size):
            raise ValueError(
                f"the discriminator was built for {self.input_size}x{self.input_size} crops, got "
                f"{hr.shape[-1]}x{hr.shape[-2]}"
            )
        return self.classifier(self.features(hr)).squeeze(1)


NETWORKS: dict[str, type[nn.Module]] = {"srresnet": SRResNet, "discriminator": Discriminator}
