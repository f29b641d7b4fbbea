"""Shipping weights: the file, its checked hash, and a model card with provenance and scores."""

from __future__ import annotations

import json

import pytest

from sr_models.inference import WeightsError, save_generator, sha256_file, weights_metadata
from sr_models.methods import get_upscaler
from sr_models.model_card import ship_weights
from sr_models.networks import SRResNet
from sr_models.training import TrainConfig, Trainer


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory, set5):
    """Two 96x96 HR crops of Set5 with their MATLAB-bicubic LR: evaluation in seconds."""
    from sr_models.images import write_png
    from sr_models.resize import make_lr

    folder = tmp_path_factory.mktemp("tiny")
    for k, pair in enumerate(list(set5)[:2]):
        hr, _ = pair.load()
        hr, lr = make_lr(hr[:, 100:196, 100:196].contiguous())
        write_png(hr, folder / f"t{k}_HR.png")
        write_png(lr, folder / f"t{k}_LR.png")
    return str(folder)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, datasets_root):
    out = tmp_path_factory.mktemp("run") / "srgan-vgg22"
    init = save_generator(SRResNet(), out.parent / "init.safetensors")
    config = TrainConfig(variant="srgan-vgg22", out_dir=str(out), datasets_root=str(datasets_root), steps=3,
                         batch_size=2, crop_size=48, max_train_images=2, validate_every=0, validation_set=None,
                         threads=1, device="cpu", init_weights=str(init))
    Trainer(config, log=lambda m: None).run(progress=False)
    return out


def test_ship_weights_writes_file_card_and_readme(tmp_path, tiny_run, tiny_set, datasets_root):
    target, card = ship_weights("srgan-vgg22", tiny_run / "last.pt", tmp_path, datasets_root, run_dir=tiny_run,
                                device="cpu", hardware="test CPU", sets=[tiny_set])
    assert target == tmp_path / "srgan-vgg22.safetensors"
    on_disk = json.loads((tmp_path / "srgan-vgg22.json").read_text())
    assert on_disk == card
    assert card["sha256"] == sha256_file(target)
    assert card["architecture"]["parameters"] == 1_550_659
    assert card["vgg"]["backbone"] == "vgg16" and card["vgg"]["layer"] == "relu2_2"
    # The loss it was trained with, next to the paper's, and why they differ.
    losses = card["losses"]
    assert (losses["adversarial_weight"], losses["low_frequency_weight"]) == (1e-4, 1.0)
    assert losses["paper"] == {"adversarial_weight": 1e-3, "tv_weight": 0.0, "low_frequency_weight": 0.0,
                               "vgg_rescale": 1 / 12.75, "gan_loss": "standard",
                               "discriminator_lr_scale": 1.0, "discriminator_warmup_steps": 0}
    assert losses["gan_loss"] == "standard" and "gan_loss_note" not in losses
    assert losses["as_in_paper"] is False and "grey levels" in losses["why_not"]
    assert [s["precision"] for s in card["training"]["sessions"]] in (["bf16-autocast"], ["fp32"])
    # SRGAN starts from a generator file that may later be replaced: the card keeps its hash.
    assert card["training"]["init_sha256"] == sha256_file(tiny_run.parent / "init.safetensors")
    assert card["training"]["steps"] == 3 and card["training"]["batch_size"] == 2
    scores = card["evaluation"][tiny_set]
    assert scores["images"] == 2 and -1 < scores["ssim_y"] < 1 and scores["lpips"] > 0 and scores["hf_laplacian_ratio"] > 0
    readme = (tmp_path / "README.md").read_text()
    assert "srgan-vgg22" in readme and card["sha256"][:16] in readme
    assert (tmp_path / "srgan-vgg22-training.png").is_file()


def test_shipped_weights_are_found_by_name_and_hash_checked(tmp_path, tiny_run, tiny_set, datasets_root):
    ship_weights("srgan-vgg22", tiny_run / "last.pt", tmp_path, datasets_root, device="cpu", sets=[tiny_set])
    upscaler = get_upscaler("srgan-vgg22", weights_dir=tmp_path, device="cpu")
    assert upscaler.weights == tmp_path / "srgan-vgg22.safetensors"
    # A corrupted or swapped file no longer matches its card.
    data = bytearray((tmp_path / "srgan-vgg22.safetensors").read_bytes())
    data[-10] ^= 0xFF
    (tmp_path / "srgan-vgg22.safetensors").write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="differs from the model card"):
        get_upscaler("srgan-vgg22", weights_dir=tmp_path, device="cpu")
    with pytest.raises(WeightsError, match="train_sr srgan-mse"):
        get_upscaler("srgan-mse", weights_dir=tmp_path, device="cpu")


def test_a_checkpoint_shipped_mid_run_is_described_at_its_own_step(tmp_path, tiny_set, datasets_root):
    out = tmp_path / "run" / "srresnet-mse"
    config = TrainConfig(variant="srresnet-mse", out_dir=str(out), datasets_root=str(datasets_root), steps=5,
                         batch_size=2, crop_size=48, max_train_images=2, validate_every=0, validation_set=None,
                         threads=1, device="cpu")
    Trainer(config, log=lambda m: None).run(progress=False, until=3)
    (out / "last.pt").rename(out / "step3.pt")
    Trainer(config, log=lambda m: None).run(progress=False)  # the run goes on; its logs reach step 5
    _, card = ship_weights("srresnet-mse", out / "step3.pt", tmp_path / "w", datasets_root, run_dir=out,
                           device="cpu", sets=[tiny_set])
    assert card["training"]["steps"] == 3 and card["training"]["steps_planned"] == 5
    assert card["losses"] == {"content": "mse", "adversarial_weight": 0.0, "tv_weight": 0.0, "low_frequency_weight": 0.0,
                              "paper": {"adversarial_weight": 0.0, "tv_weight": 0.0, "low_frequency_weight": 0.0},
                              "as_in_paper": True}
    # Both processes (to step 3, then on to 5) are recorded; the card keeps those that led to step 3.
    assert [s["from_step"] for s in card["training"]["sessions"]] == [0]
    assert weights_metadata(tmp_path / "w" / "srresnet-mse.safetensors")["steps"] == "3"


def test_card_says_where_the_learning_rate_dropped_when_a_resumed_run_changed_its_steps(tmp_path, tiny_set,
                                                                                         datasets_root):
    out = tmp_path / "run" / "srresnet-mse"
    settings = dict(variant="srresnet-mse", out_dir=str(out), datasets_root=str(datasets_root), batch_size=2,
                    crop_size=48, max_train_images=2, validate_every=0, validation_set=None, threads=1,
                    device="cpu", lr_decay_at=0.5)
    Trainer(TrainConfig(steps=8, **settings), log=lambda m: None).run(progress=False, until=2)
    # Cut short on resume: the drop planned for step 4 of 8 moves to step 3 of 6.
    Trainer(TrainConfig(steps=6, **settings), log=lambda m: None).run(progress=False)
    _, card = ship_weights("srresnet-mse", out / "generator.safetensors", tmp_path / "w", datasets_root,
                           run_dir=out, device="cpu", sets=[tiny_set])
    t = card["training"]
    assert t["learning_rate"]["as_run"] == [{"from_step": 0, "lr": 1e-4}, {"from_step": 3, "lr": pytest.approx(1e-5)}]
    assert [(s["from_step"], s["steps"], s["lr_at_start"]) for s in t["sessions"]] == [(0, 8, 1e-4), (2, 6, 1e-4)]


def test_a_relativistic_run_is_named_in_the_card_as_leaving_the_paper(tmp_path):
    """srgan-mse at the paper's weights is as in the paper, unless its GAN loss was the relativistic
    one: catches a card that reads the weights and not the loss (a non-paper run passed as the paper's)."""
    from sr_models.model_card import _loss_summary
    from sr_models.variants import get_variant

    variant = get_variant("srgan-mse")
    for gan_loss, as_in_paper in (("standard", True), ("relativistic", False)):
        (tmp_path / "config.json").write_text(json.dumps({"adversarial_weight": 1e-3, "gan_loss": gan_loss}))
        summary = _loss_summary(variant, tmp_path, "vgg16")
        assert summary["gan_loss"] == gan_loss and summary["as_in_paper"] is as_in_paper
        assert ("gan_loss_note" in summary) is (not as_in_paper)
    # A slower discriminator is another departure from the paper's one learning rate.
    (tmp_path / "config.json").write_text(json.dumps({"adversarial_weight": 1e-3, "discriminator_lr_scale": 0.25}))
    summary = _loss_summary(variant, tmp_path, "vgg16")
    assert summary["discriminator_lr_scale"] == 0.25 and summary["as_in_paper"] is False
    # So is a discriminator trained alone before the generator.
    (tmp_path / "config.json").write_text(json.dumps({"adversarial_weight": 1e-3, "discriminator_warmup_steps": 200}))
    summary = _loss_summary(variant, tmp_path, "vgg16")
    assert summary["discriminator_warmup_steps"] == 200 and summary["as_in_paper"] is False
    # And a loss on the pixel-shuffle grid, a term the paper's loss does not have.
    (tmp_path / "config.json").write_text(json.dumps({"adversarial_weight": 1e-3, "grid_weight": 10.0}))
    summary = _loss_summary(variant, tmp_path, "vgg16")
    assert summary["grid_weight"] == 10.0 and summary["paper"]["grid_weight"] == 0.0
    assert summary["as_in_paper"] is False
    # And a content loss on several VGG layers; naming only the variant's own layer is the paper's.
    # (SRGAN-VGG22: on VGG16 its relu2_2 keeps the paper's rescale: with the paper's weights the card is the paper's.)
    for layers, as_in_paper in ((["vgg12", "vgg22"], False), (["vgg22"], True)):
        (tmp_path / "config.json").write_text(json.dumps({"adversarial_weight": 1e-3, "low_frequency_weight": 0,
                                                          "content_layers": layers}))
        summary = _loss_summary(get_variant("srgan-vgg22"), tmp_path, "vgg16")
        assert summary["as_in_paper"] is as_in_paper
        assert summary.get("content_layers") == (None if as_in_paper else layers)
        assert summary["paper"].get("content_layers") == (None if as_in_paper else ["vgg22"])
