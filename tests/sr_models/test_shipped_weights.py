"""The shipped weights: every variant is there, loads with its hash checked, scores what its model
card says, and the cards show what the paper's Table 1 and Figure 2 show (GANs trade PSNR for
high-frequency detail)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sr_models.evaluation import evaluate_dataset, mean_scores
from sr_models.methods import get_upscaler
from sr_models.variants import VARIANTS
from tests.conftest import REPO

WEIGHTS = REPO / "sr_models" / "weights"


def card(variant: str) -> dict:
    return json.loads((WEIGHTS / f"{variant}.json").read_text())


def test_every_variant_ships_with_a_card_and_curves():
    for variant in VARIANTS:
        assert (WEIGHTS / f"{variant}.safetensors").is_file(), variant
        c = card(variant)
        assert c["variant"] == variant and c["training"]["steps"] > 0
        assert (WEIGHTS / f"{variant}-training.png").is_file(), variant
        assert c["sha256"][:16] in (WEIGHTS / "README.md").read_text()


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_shipped_weights_score_what_their_card_says_on_set5(variant, set5):
    upscaler = get_upscaler(variant, weights_dir=WEIGHTS, device="cpu")  # checks the SHA-256
    mean = mean_scores(evaluate_dataset(set5, upscaler))
    expected = card(variant)["evaluation"]["Set5"]
    # Thread counts change fp32 summation order, which can flip a rounded pixel here and there.
    assert mean.psnr_y == pytest.approx(expected["psnr_y"], abs=0.01)
    assert mean.ssim_y == pytest.approx(expected["ssim_y"], abs=1e-4)


def test_srresnet_mse_meets_the_bar():
    e = card("srresnet-mse")["evaluation"]
    assert e["Set5"]["psnr_y"] >= 31.0  # bicubic: 28.42; the paper (10^6 ImageNet steps): 32.05
    assert e["Set14"]["psnr_y"] > 25.99 + 1 and e["BSD100"]["psnr_y"] > 25.96 + 0.5


@pytest.mark.parametrize("variant", ["srgan-mse", "srgan-vgg22", "srgan-vgg54"])
def test_gans_trade_psnr_for_high_frequency_detail(variant):
    mse, gan = card("srresnet-mse")["evaluation"]["BSD100"], card(variant)["evaluation"]["BSD100"]
    assert gan["psnr_y"] < mse["psnr_y"]
    # Closer to the HR's high-frequency energy (ratio 1) than the MSE network, which blurs.
    assert abs(1 - gan["hf_laplacian_ratio"]) < abs(1 - mse["hf_laplacian_ratio"])
    if variant == "srgan-vgg54":
        # The Figure 2 network is also closer to the HR by LPIPS-VGG. The short SRGAN-MSE and -VGG22
        # runs add energy that LPIPS rates below SRResNet-MSE's blur (BSD100 0.386 and 0.364 against
        # 0.347): reported in their cards and docs/training_recipes.md, not required.
        assert gan["lpips"] < mse["lpips"]


def test_gan_cards_say_where_their_loss_leaves_the_paper():
    for variant in VARIANTS:
        losses = card(variant)["losses"]
        assert losses["as_in_paper"] == all(losses[k] == v for k, v in losses["paper"].items()), variant
        if not losses["as_in_paper"]:
            assert losses["why_not"], variant


def test_weights_readme_lists_only_what_ships():
    listed = {line.split("|")[1].strip() for line in (WEIGHTS / "README.md").read_text().splitlines()
              if line.startswith("| ") and not line.startswith("| variant")}
    assert listed == {p.stem for p in Path(WEIGHTS).glob("*.safetensors")}
