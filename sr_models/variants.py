"""The five generator variants of the paper's Table 1 and their learning-rate schedules."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Variant", "VARIANTS", "PAPER_VGG_RESCALE", "LossWeights", "get_variant", "learning_rate"]

# "we rescale the feature maps by 1/12.75 to obtain VGG losses of a scale comparable to the MSE loss"
PAPER_VGG_RESCALE = 1.0 / 12.75


@dataclass(frozen=True)
class LossWeights:
    """The weights of one training run's generator loss:
    ``content(rescale) + adversarial * -log D(G) + tv * TV + low_frequency * LF + grid * GRID``."""

    adversarial: float
    tv: float
    low_frequency: float
    vgg_rescale: float
    grid: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {"adversarial_weight": self.adversarial, "tv_weight": self.tv,
                "low_frequency_weight": self.low_frequency, "vgg_rescale": self.vgg_rescale,
                "grid_weight": self.grid}


@dataclass(frozen=True)
class Variant:
    """How one generator variant is trained.

    Attributes
    ----------
    content : {'mse', 'vgg22', 'vgg54'}
        Content loss: pixel MSE, or VGG features at relu2_2 / the deepest block.
    adversarial_weight : float
        Weight of ``-log D(G(x))``: 1e-3 for SRGAN, 0 for SRResNet (no discriminator).
    tv_weight : float
        Total-variation weight (2e-8 for SRResNet-VGG22).
    init_from : str or None
        Variant whose trained generator initialises this one. The paper initialises SRGAN from
        SRResNet-MSE "to avoid undesired local optima"; we do the same for SRResNet-VGG22, which
        the paper leaves unstated, so that it fits a CPU budget.
    low_frequency_weight : float
        Weight of :func:`sr_models.losses.low_frequency_loss` (not in the paper; 0 keeps its loss).
    recipe_note : str
        Why this variant's defaults differ from the paper, when they do (copied to model cards).
    """

    name: str
    content: str
    adversarial_weight: float = 0.0
    tv_weight: float = 0.0
    init_from: str | None = None
    base_lr: float = 1e-4
    low_frequency_weight: float = 0.0
    recipe_note: str = ""

    def loss_weights(self, backbone_rescale: float = PAPER_VGG_RESCALE, adversarial: float | None = None,
                     low_frequency: float | None = None, vgg_rescale: float | None = None,
                     grid: float | None = None) -> LossWeights:
        """This variant's weights with a run's overrides (None keeps the variant's); the VGG rescale
        defaults to the backbone layer's (``sr_models.vgg.BACKBONES``). The grid weight
        (:func:`sr_models.losses.grid_loss`, not in the paper) is 0 in every variant's recipe."""
        weights = LossWeights(
            adversarial=self.adversarial_weight if adversarial is None else float(adversarial),
            tv=self.tv_weight,
            low_frequency=self.low_frequency_weight if low_frequency is None else float(low_frequency),
            vgg_rescale=(backbone_rescale if vgg_rescale is None else float(vgg_rescale)) if self.uses_vgg else 0.0,
            grid=0.0 if grid is None else float(grid),
        )
        if self.is_gan and weights.adversarial <= 0:
            raise ValueError(f"{self.name} is a GAN variant: its adversarial weight must be positive")
        if not self.is_gan and weights.adversarial:
            raise ValueError(f"{self.name} has no discriminator: an adversarial weight makes it another variant")
        if weights.low_frequency < 0 or weights.grid < 0 or (self.uses_vgg and weights.vgg_rescale <= 0):
            raise ValueError("the low-frequency and grid weights must be >= 0 and the VGG rescale > 0")
        return weights

    @property
    def paper_loss_weights(self) -> LossWeights:
        """The weights as Ledig et al. (2017) state them, for model cards to compare with."""
        return LossWeights(adversarial=1e-3 if self.is_gan else 0.0, tv=self.tv_weight, low_frequency=0.0,
                           vgg_rescale=PAPER_VGG_RESCALE if self.uses_vgg else 0.0)

    @property
    def is_gan(self) -> bool:
        return self.adversarial_weight > 0

    @property
    def uses_vgg(self) -> bool:
        return self.content.startswith("vgg")


# Measured from SRResNet-MSE with the offline VGG16 backbone (docs/training_recipes.md).
_VGG_GAN_NOTE = (
    "adversarial weight 1e-4 instead of the paper's 1e-3, plus a low-frequency pixel loss (weight 1) that "
    "pins colour and brightness: with the paper's weights, 100-200 steps from SRResNet-MSE took Set5 to "
    "18-22 dB with colour shifts of 14-27 grey levels (SRGAN-VGG22 and -VGG54 alike), a collapse that runs of a "
    "few thousand steps cannot wait out; with these, colour stays within 2 levels while the high-frequency energy "
    "rises towards the HR's"
)

_VGG_NOTE = (
    "a low-frequency pixel loss (weight 1) that pins colour and brightness, not in the paper: with the "
    "paper's loss, 50-150 steps from SRResNet-MSE took Set5 from 29.7 to 24-25 dB with colour shifts of "
    "5-7 grey levels"
)

VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("srresnet-mse", content="mse"),
        Variant("srresnet-vgg22", content="vgg22", tv_weight=2e-8, init_from="srresnet-mse",
                low_frequency_weight=1.0, recipe_note=_VGG_NOTE),
        Variant("srgan-mse", content="mse", adversarial_weight=1e-3, init_from="srresnet-mse"),
        Variant("srgan-vgg22", content="vgg22", adversarial_weight=1e-4, init_from="srresnet-mse",
                low_frequency_weight=1.0, recipe_note=_VGG_GAN_NOTE),
        Variant("srgan-vgg54", content="vgg54", adversarial_weight=1e-4, init_from="srresnet-mse",
                low_frequency_weight=1.0, recipe_note=_VGG_GAN_NOTE),
    )
}


def get_variant(name: str) -> Variant:
    try:
        return VARIANTS[name]
    except KeyError:
        raise ValueError(f"unknown SR variant {name!r}; choose one of {', '.join(VARIANTS)}") from None


def learning_rate(variant: Variant, step: int, total_steps: int, base_lr: float | None = None,
                  decay_at: float | None = None) -> float:
    """Learning rate at ``step`` (0-based) of ``total_steps``: the paper's schedule, scaled.

    SRResNet: constant (1e-4 for 10^6 updates in the paper). SRGAN: 1e-4 for the first half, 1e-5 for
    the second (10^5 + 10^5 updates in the paper). ``decay_at`` (a fraction of ``total_steps``)
    overrides where the 10x drop happens, or adds one to SRResNet's schedule.
    """
    lr = variant.base_lr if base_lr is None else base_lr
    if decay_at is None and variant.is_gan:
        decay_at = 0.5
    if decay_at is not None and step >= int(round(decay_at * total_steps)):
        return lr * 0.1
    return lr
