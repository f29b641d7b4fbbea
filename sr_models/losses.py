"""The SRGAN losses (Ledig et al., CVPR 2017, section 2.2).

All generator outputs and HR targets are in ``[-1, 1]``, shape ``(N, 3, H, W)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .sharpness import periodic_component
from .variants import PAPER_VGG_RESCALE
from .vgg import VGGLayer, imagenet_normalize, layer_spec, load_vgg_features

__all__ = ["VGGContentLoss", "mse_loss", "adversarial_loss", "discriminator_loss", "relativistic_losses",
           "tv_loss", "low_frequency_loss", "grid_loss", "GAN_LOSSES", "VGG_RESCALE"]

#: The adversarial losses a run may train with: the paper's, and one clearly named non-paper option.
GAN_LOSSES = ("standard", "relativistic")

VGG_RESCALE = PAPER_VGG_RESCALE


def mse_loss(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """Pixel-wise MSE content loss."""
    return F.mse_loss(sr.float(), hr.float())


class VGGContentLoss(nn.Module):
    """Squared distance between VGG activations of SR and HR, feature maps rescaled by 1/12.75.

    Parameters
    ----------
    layer : {'vgg22', 'vgg54', ...} or a sequence of them
        relu2_2, or the deepest block's last ReLU (relu5_4 for VGG19, relu5_3 for VGG16); the keys of
        :data:`sr_models.vgg.BACKBONES`. Several layers (not the paper's loss; ESRGAN and BasicSR
        train with relu1 to relu5): the mean of each layer's loss, each at its own rescale, so that
        every term stays of the MSE's scale.
    backbone : {'vgg19', 'vgg16'}
        The paper's VGG19, or the offline ImageNet VGG16 (see :mod:`sr_models.vgg`).
    rescale : float, optional
        Factor on the feature maps before the squared distance. The paper chose 1/12.75 so that VGG
        losses are "of a scale comparable to the MSE loss"; how large features are depends on the
        backbone and layer, so the default is the layer's own (:data:`sr_models.vgg.BACKBONES`). With
        several layers it sets the deepest one's, the others keep theirs.
    """

    def __init__(self, layer: str | Sequence[str] = "vgg54", backbone: str = "vgg19",
                 weights_path: str | Path | None = None, rescale: float | None = None):
        super().__init__()
        names = [layer] if isinstance(layer, str) else list(layer)
        if not names or len(set(names)) != len(names):
            raise ValueError(f"VGG content layers must be distinct and at least one, not {names!r}")
        names.sort(key=lambda n: layer_spec(backbone, n).n_modules)
        # The network up to the deepest layer, once; forward() reads the shallower ones on the way.
        self.features, self.spec = load_vgg_features(backbone, names[-1], weights_path)
        self.specs = [layer_spec(backbone, n) for n in names]
        self.rescales = [sp.rescale for sp in self.specs[:-1]] + [self.spec.rescale if rescale is None
                                                                   else float(rescale)]
        self.rescale = self.rescales[-1]

    @property
    def layer(self) -> VGGLayer:
        return self.spec

    def train(self, mode: bool = True) -> "VGGContentLoss":
        # The backbone is a fixed measuring instrument: it stays in eval mode whatever the caller does.
        super().train(mode)
        self.features.eval()
        return self

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        x = imagenet_normalize((torch.cat([sr, hr], dim=0) + 1.0) / 2.0)
        losses, start = [], 0
        for spec, rescale in zip(self.specs, self.rescales):
            x = self.features[start:spec.n_modules](x)
            start = spec.n_modules
            f_sr, f_hr = (x * rescale).float().chunk(2, dim=0)
            losses.append(F.mse_loss(f_sr, f_hr.detach()))
        return torch.stack(losses).mean()


def adversarial_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator loss ``-log D(G(x))``, the paper's non-saturating form, from D's logits."""
    return F.binary_cross_entropy_with_logits(fake_logits.float(), torch.ones_like(fake_logits, dtype=torch.float32))


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """``-log D(HR) - log(1 - D(G(LR)))``, averaged over the batch."""
    real = F.binary_cross_entropy_with_logits(real_logits.float(), torch.ones_like(real_logits, dtype=torch.float32))
    fake = F.binary_cross_entropy_with_logits(fake_logits.float(), torch.zeros_like(fake_logits, dtype=torch.float32))
    return real + fake


def relativistic_losses(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(discriminator loss, generator loss) of the relativistic average GAN (Jolicoeur-Martineau 2018),
    as ESRGAN uses it (Wang et al. 2018, eqs. 1-2). Not the paper's loss.

    D is asked whether HR is *more realistic than the average SR* (and SR less so than the average HR),
    rather than whether each image is real: a D that is sure of both sides no longer saturates, and the
    generator's loss carries gradients from the HR batch too. Each loss is the mean of its two halves,
    so at D's chance point (all logits equal) both equal log 2 as the standard losses' halves do.
    """
    real, fake = real_logits.float(), fake_logits.float()
    real_vs_fake = real - fake.mean()
    fake_vs_real = fake - real.mean()
    ones, zeros = torch.ones_like(real), torch.zeros_like(fake)
    bce = F.binary_cross_entropy_with_logits
    d_loss = (bce(real_vs_fake, ones) + bce(fake_vs_real, zeros)) / 2
    g_loss = (bce(real_vs_fake, zeros) + bce(fake_vs_real, ones)) / 2
    return d_loss, g_loss


def tv_loss(x: torch.Tensor) -> torch.Tensor:
    """Total variation: squared differences of neighbouring pixels, summed per image, batch mean.

    Used by SRResNet-VGG22 with weight 2e-8; summing (not averaging) over pixels is what makes a
    weight that small matter at all.
    """
    x = x.float()
    dh = (x[..., 1:, :] - x[..., :-1, :]).pow(2).sum(dim=(1, 2, 3))
    dw = (x[..., :, 1:] - x[..., :, :-1]).pow(2).sum(dim=(1, 2, 3))
    return (dh + dw).mean()


def low_frequency_loss(sr: torch.Tensor, hr: torch.Tensor, factor: int = 4) -> torch.Tensor:
    """MSE between ``factor`` x ``factor`` block means of SR and HR: a pixel loss on what the LR image
    already determines (colour, brightness, shapes), blind to the detail above the LR Nyquist frequency.

    Not one of the paper's losses. Deep VGG features barely depend on colour and mean brightness, so
    with a VGG54 content loss the adversarial term and Adam's noise move them freely: in 100 steps from
    SRResNet-MSE, Set5 drifted by up to 27 grey levels in one channel (docs/training_recipes.md). This term
    pins them while leaving texture to the content and adversarial losses; its weight is part of a
    training recipe and recorded in the model card.
    """
    return F.mse_loss(F.avg_pool2d(sr.float(), factor), F.avg_pool2d(hr.float(), factor))


def grid_loss(sr: torch.Tensor, hr: torch.Tensor, factor: int = 4) -> torch.Tensor:
    """MSE between the ``factor``-periodic components of SR and HR (:func:`periodic_component`), per
    crop and channel: the pixel MSE on the 15 frequencies of the 4x4 lattice alone, blind to the rest.

    Not one of the paper's losses. The pixel-shuffle upsampler makes each output pixel from one of
    ``factor**2`` sub-pixel phases, so a pattern locked to that grid is the cheapest high frequency it
    can add; under a strong adversarial term it does (a checkerboard on smooth skin,
    docs/training_recipes.md), where a natural crop has almost none. This term holds those frequencies
    to the HR's as an MSE content loss would, and leaves every other frequency (texture) to the content
    and adversarial losses; its weight is part of a recipe and recorded in the model card.
    """
    return F.mse_loss(periodic_component(sr.float(), factor), periodic_component(hr.float(), factor))
