"""The five generator variants of the paper's Table 1 and their learning-rate schedules."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Variant", "VARIANTS", "get_variant", "learning_rate"]


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
    """

    name: str
    content: str
    adversarial_weight: float = 0.0
    tv_weight: float = 0.0
    init_from: str | None = None
    base_lr: float = 1e-4

    @property
    def is_gan(self) -> bool:
        return self.adversarial_weight > 0

    @property
    def uses_vgg(self) -> bool:
        return self.content.startswith("vgg")


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("srresnet-mse", content="mse"),
        Variant("srresnet-vgg22", content="vgg22", tv_weight=2e-8, init_from="srresnet-mse"),
        Variant("srgan-mse", content="mse", adversarial_weight=1e-3, init_from="srresnet-mse"),
        Variant("srgan-vgg22", content="vgg22", adversarial_weight=1e-3, init_from="srresnet-mse"),
        Variant("srgan-vgg54", content="vgg54", adversarial_weight=1e-3, init_from="srresnet-mse"),
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
