"""Training every variant for a few steps on a few real crops, exact resume, logs and the schedule."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from sr_models import train as train_cli
from sr_models.inference import load_generator, save_generator
from sr_models.networks import SRResNet
from sr_models.training import CropSampler, TrainConfig, Trainer
from sr_models.variants import VARIANTS, get_variant, learning_rate


def tiny_config(tmp_path, datasets_root, variant, **kw) -> TrainConfig:
    defaults = dict(
        variant=variant,
        out_dir=str(tmp_path / variant),
        datasets_root=str(datasets_root),
        steps=8,
        batch_size=2,
        crop_size=48,
        lr=1e-3,
        max_train_images=3,
        checkpoint_every=100,
        validate_every=0,
        validation_set=None,
        threads=1,
        device="cpu",
    )
    defaults.update(kw)
    return TrainConfig(**defaults)


def read_losses(run_dir):
    with open(run_dir / "losses.csv") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def mse_init(tmp_path_factory):
    """A generator briefly trained with MSE, standing in for SRResNet-MSE as the SRGAN init."""
    path = tmp_path_factory.mktemp("init") / "srresnet-mse.safetensors"
    torch.manual_seed(1)
    save_generator(SRResNet(), path)
    return path


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_each_variant_trains_with_finite_falling_losses(tmp_path, datasets_root, variant, mse_init):
    v = get_variant(variant)
    config = tiny_config(tmp_path, datasets_root, variant, init_weights=str(mse_init) if v.init_from else None)
    trainer = Trainer(config, log=lambda msg: None)
    result = trainer.run(progress=False)
    assert result["step"] == 8
    rows = read_losses(tmp_path / variant)
    assert [int(r["step"]) for r in rows] == list(range(1, 9))
    content = [float(r["content"]) for r in rows]
    assert all(torch.isfinite(torch.tensor(content)))
    assert sum(content[-3:]) < sum(content[:3])
    if v.is_gan:
        d = [float(r["d_loss"]) for r in rows]
        assert all(x > 0 for x in d)
        assert all(float(r["adversarial"]) > 0 for r in rows)
    else:
        assert all(float(r["d_loss"]) == 0 for r in rows)
    # The finished run leaves the generator it trained (every weight and BN statistic), a curves plot
    # and its config. (load_generator raises rather than return None: compare the tensors instead.)
    loaded = load_generator(tmp_path / variant / "generator.safetensors").state_dict()
    trained = trainer.generator.state_dict()
    assert loaded.keys() == trained.keys()
    for key, tensor in trained.items():
        assert torch.equal(loaded[key], tensor.cpu()), key
    assert (tmp_path / variant / "curves.png").stat().st_size > 1000
    assert (tmp_path / variant / "config.json").exists()


@pytest.mark.parametrize("variant", ["srresnet-mse", "srgan-vgg22"])
def test_resume_after_a_kill_reproduces_the_uninterrupted_run(tmp_path, datasets_root, variant, mse_init):
    v = get_variant(variant)
    init = str(mse_init) if v.init_from else None
    straight = tiny_config(tmp_path / "straight", datasets_root, variant, steps=5, init_weights=init, checkpoint_every=3)
    Trainer(straight, log=lambda m: None).run(progress=False)

    interrupted = tiny_config(tmp_path / "killed", datasets_root, variant, steps=5, init_weights=init, checkpoint_every=3)
    Trainer(interrupted, log=lambda m: None).run(progress=False, until=4)
    ckpt = torch.load(tmp_path / "killed" / variant / "last.pt", weights_only=True)
    assert ckpt["step"] == 4
    # A new process (a new Trainer, freshly initialised) picks up the checkpoint and finishes.
    Trainer(interrupted, log=lambda m: None).run(progress=False)
    a = torch.load(tmp_path / "straight" / variant / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "killed" / variant / "last.pt", weights_only=True)
    assert a["step"] == b["step"] == 5
    for key in a["generator"]:
        assert torch.equal(a["generator"][key], b["generator"][key]), key
    if v.is_gan:
        for key in a["discriminator"]:
            assert torch.equal(a["discriminator"][key], b["discriminator"][key]), key
    rows = read_losses(tmp_path / "killed" / variant)
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5]
    straight_rows = read_losses(tmp_path / "straight" / variant)
    assert [r["g_total"] for r in rows] == [r["g_total"] for r in straight_rows]


def test_log_rows_written_after_the_last_checkpoint_are_dropped_on_resume(tmp_path, datasets_root):
    config = tiny_config(tmp_path, datasets_root, "srresnet-mse", steps=4, checkpoint_every=2)
    Trainer(config, log=lambda m: None).run(progress=False, until=2)
    log = tmp_path / "srresnet-mse" / "losses.csv"
    # Simulate a process killed after logging step 3 but before its checkpoint, in the middle of
    # writing the row of step 4 (only "1" of "14,..." reached the disk).
    with open(log, "a") as fh:
        fh.write("3,0.001,9.9,9.9,0,0,0,0,0,1.0\n1")
    Trainer(config, log=lambda m: None).run(progress=False)
    rows = read_losses(tmp_path / "srresnet-mse")
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert float(rows[2]["g_total"]) != 9.9


def test_batches_depend_only_on_seed_and_step(datasets_root):
    from sr_models.datasets import training_image_paths

    paths = training_image_paths(datasets_root)[:3]
    a = CropSampler(paths, 48, 4, seed=7)
    b = CropSampler(paths, 48, 4, seed=7)
    lr1, hr1 = a.batch(5, 4)
    b.batch(0, 4)  # other draws in between change nothing
    lr2, hr2 = b.batch(5, 4)
    assert torch.equal(lr1, lr2) and torch.equal(hr1, hr2)
    assert lr1.shape == (4, 3, 12, 12) and hr1.shape == (4, 3, 48, 48)
    assert lr1.min() >= 0 and lr1.max() <= 1 and hr1.min() >= -1 and hr1.max() <= 1
    assert not torch.equal(a.batch(6, 4)[1], hr1)
    # The seed decides the crops too: another seed, the same step, other crops. (Catches a sampler
    # seeding its generator from the step alone.)
    assert not torch.equal(CropSampler(paths, 48, 4, seed=8).batch(5, 4)[1], hr1)


def test_lr_crops_are_matlab_bicubic_of_the_hr_crops(datasets_root):
    from sr_models.datasets import training_image_paths
    from sr_models.resize import imresize

    sampler = CropSampler(training_image_paths(datasets_root)[:2], 96, 4, seed=0)
    lr, hr = sampler.batch(0, 2)
    hr_u8 = torch.round((hr + 1) * 127.5).to(torch.uint8)
    assert torch.equal(torch.round(lr * 255).to(torch.uint8), imresize(hr_u8, 0.25))


def test_small_training_images_are_skipped(datasets_root):
    from sr_models.datasets import training_image_paths

    sampler = CropSampler(training_image_paths(datasets_root, ("T91",)), 96, 4, seed=0)
    assert len(sampler.skipped) == 1 and len(sampler.images) == 90


def test_learning_rate_schedules_follow_the_paper_scaled():
    srresnet, srgan = get_variant("srresnet-mse"), get_variant("srgan-vgg54")
    assert {learning_rate(srresnet, s, 1000) for s in (0, 500, 999)} == {1e-4}
    assert learning_rate(srgan, 499, 1000) == 1e-4
    assert learning_rate(srgan, 500, 1000) == pytest.approx(1e-5)
    assert learning_rate(srresnet, 800, 1000, base_lr=2e-4, decay_at=0.8) == pytest.approx(2e-5)
    assert learning_rate(srresnet, 799, 1000, base_lr=2e-4, decay_at=0.8) == 2e-4


def test_config_survives_json(tmp_path, datasets_root):
    config = tiny_config(tmp_path, datasets_root, "srgan-vgg54")
    assert TrainConfig.from_json(config.to_json()) == config


def test_unknown_variant():
    with pytest.raises(ValueError, match="unknown SR variant 'srgan-vgg99'"):
        get_variant("srgan-vgg99")


def test_resume_refuses_a_checkpoint_trained_with_other_settings(tmp_path, datasets_root):
    first = tiny_config(tmp_path, datasets_root, "srresnet-mse", steps=4)
    Trainer(first, log=lambda m: None).run(progress=False, until=2)
    run_dir = tmp_path / "srresnet-mse"
    before = (run_dir / "last.pt").read_bytes(), (run_dir / "config.json").read_text()

    other_lr = tiny_config(tmp_path, datasets_root, "srresnet-mse", steps=4, lr=5e-4)
    with pytest.raises(ValueError, match=r"lr: 0\.001 -> 0\.0005"):
        Trainer(other_lr, log=lambda m: None).run(progress=False)
    too_short = tiny_config(tmp_path, datasets_root, "srresnet-mse", steps=1)
    with pytest.raises(ValueError, match="at step 2, past the 1 steps"):
        Trainer(too_short, log=lambda m: None).run(progress=False)
    # Refusals leave the run as it was.
    assert ((run_dir / "last.pt").read_bytes(), (run_dir / "config.json").read_text()) == before

    # Settings that do not change what is learned may differ; a longer run is allowed and said.
    messages = []
    longer = tiny_config(tmp_path, datasets_root, "srresnet-mse", steps=5, threads=2, checkpoint_every=7)
    assert Trainer(longer, log=messages.append).run(progress=False)["step"] == 5
    assert any("learning-rate schedule" in m for m in messages)
    assert json.loads((run_dir / "config.json").read_text())["steps"] == 5


def test_train_cli_reports_a_mismatched_resume_without_a_traceback(tmp_path, datasets_root, capsys):
    common = ["srresnet-mse", "--out", str(tmp_path), "--datasets-root", str(datasets_root), "--batch-size", "2",
              "--crop-size", "48", "--max-train-images", "3", "--validate-every", "0", "--device", "cpu",
              "--no-progress"]
    assert train_cli.main([*common, "--steps", "2"]) == 0
    assert train_cli.main([*common, "--steps", "3", "--lr", "0.01"]) == 2
    assert "other settings (lr:" in capsys.readouterr().err


def test_every_option_named_like_a_config_field_reaches_the_config():
    # Each option's parsed value, changed from its default, lands in the TrainConfig field of its
    # name; out/datasets-root/backbone fall back to the given defaults. (Catches an option dropped
    # from a hand-written copy, as config_from_args was.)
    import dataclasses

    parser = train_cli.build_parser()
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    argv = ["srgan-vgg54", "--out", "o", "--datasets-root", "d", "--steps", "7", "--batch-size", "3", "--crop-size",
            "64", "--lr", "0.002", "--lr-decay-at", "0.4", "--seed", "5", "--backbone", "vgg19", "--vgg-weights",
            "v.pth", "--init", "g.safetensors", "--adversarial-weight", "0.01", "--low-frequency-weight", "0.5",
            "--vgg-rescale", "0.2", "--grid-weight", "2", "--content-layers", "vgg22,vgg54", "--gan-loss", "relativistic", "--discriminator-lr-scale", "0.5", "--discriminator-warmup-steps", "2", "--checkpoint-every", "9", "--keep-every", "3", "--validate-every", "11", "--max-train-images", "4",
            "--device", "cpu", "--threads", "2", "--precision", "fp32"]  # fmt: skip
    args = parser.parse_args(argv)
    config = train_cli.config_from_args(args, "root", "runs", "vgg16")
    dests = {a.dest for a in parser._actions} & fields
    assert len(dests) == 26  # premise: every option but --out, --no-progress and the help
    for dest in dests:
        assert getattr(config, dest) == getattr(args, dest) != parser.get_default(dest), dest
    assert (config.out_dir, config.datasets_root, config.backbone) == ("o", "d", "vgg19")
    defaults = train_cli.config_from_args(parser.parse_args(["srresnet-mse"]), "root", "runs", "vgg16")
    assert (defaults.out_dir, defaults.datasets_root, defaults.backbone) == (str(Path("runs") / "srresnet-mse"),
                                                                          "root", "vgg16")  # fmt: skip


def test_both_commands_start_a_variant_from_the_generator_it_names(tmp_path, monkeypatch, capsys):
    # Variant.init_from decides the start, for python -m sr_models.train as for manage.py train_sr
    # (which used to be the only one to do it, with "srresnet-mse" written out).
    parser = train_cli.build_parser()
    (tmp_path / "srresnet-mse.safetensors").write_bytes(b"weights")
    config = train_cli.config_from_args(parser.parse_args(["srgan-vgg22"]), "root", "runs", "vgg16")
    assert "shipped srresnet-mse" in train_cli.default_init(config, tmp_path)
    assert config.init_weights == str(tmp_path / "srresnet-mse.safetensors")
    mse = train_cli.config_from_args(parser.parse_args(["srresnet-mse"]), "root", "runs", "vgg16")
    assert train_cli.default_init(mse, tmp_path) == "" and mse.init_weights is None  # init_from is None
    chosen = train_cli.config_from_args(parser.parse_args(["srgan-mse", "--init", "x.pt"]), "root", "runs", "vgg16")
    assert train_cli.default_init(chosen, tmp_path) == "" and chosen.init_weights == "x.pt"
    missing = train_cli.config_from_args(parser.parse_args(["srgan-mse"]), "root", "runs", "vgg16")
    assert train_cli.default_init(missing, tmp_path / "none").startswith("warning: no srresnet-mse")
    assert missing.init_weights is None
    # The Django-free command applies it too.
    seen = []
    monkeypatch.setattr(train_cli, "SHIPPED_WEIGHTS_DIR", tmp_path)
    monkeypatch.setattr(train_cli, "train", lambda config, progress, log: seen.append(config) or {"step": 0, "validation": {}})
    assert train_cli.main(["srgan-vgg54", "--out", str(tmp_path / "run")]) == 0
    assert seen[0].init_weights == str(tmp_path / "srresnet-mse.safetensors")
    assert "initialising from the shipped srresnet-mse" in capsys.readouterr().out


def test_precision_setting_decides_bf16_autocast():
    from sr_models.training import cpu_has_bf16_matrix_units, uses_bf16_autocast

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert not uses_bf16_autocast("fp32", cpu) and not uses_bf16_autocast("fp32", cuda)
    assert uses_bf16_autocast("bf16", cpu) and uses_bf16_autocast("auto", cuda)
    # On a CPU, auto means bf16 only where matrix units make it faster than fp32.
    assert uses_bf16_autocast("auto", cpu) == cpu_has_bf16_matrix_units()
    with pytest.raises(ValueError, match="precision must be"):
        uses_bf16_autocast("fp16", cpu)


def test_bf16_training_tracks_fp32_and_keeps_fp32_weights(tmp_path, datasets_root):
    runs = {}
    for precision in ("fp32", "bf16"):
        config = tiny_config(tmp_path / precision, datasets_root, "srresnet-mse", steps=4, precision=precision)
        Trainer(config, log=lambda m: None).run(progress=False)
        runs[precision] = tmp_path / precision / "srresnet-mse"
    fp32 = [float(r["g_total"]) for r in read_losses(runs["fp32"])]
    bf16 = [float(r["g_total"]) for r in read_losses(runs["bf16"])]
    assert fp32 != bf16  # bf16 really ran
    for a, b in zip(fp32, bf16):
        assert b == pytest.approx(a, rel=0.03)
    ckpt = torch.load(runs["bf16"] / "last.pt", weights_only=True)
    assert {t.dtype for t in ckpt["generator"].values() if t.is_floating_point()} == {torch.float32}
    sessions = [json.loads(line) for line in (runs["bf16"] / "sessions.jsonl").read_text().splitlines()]
    assert [(s["from_step"], s["device"], s["precision"]) for s in sessions] == [(0, "cpu", "bf16-autocast")]


def test_a_run_may_change_precision_on_resume_and_records_each_stretch(tmp_path, datasets_root):
    Trainer(tiny_config(tmp_path, datasets_root, "srresnet-mse", steps=4, checkpoint_every=2, precision="fp32"),
            log=lambda m: None).run(progress=False, until=2)
    messages = []
    Trainer(tiny_config(tmp_path, datasets_root, "srresnet-mse", steps=4, checkpoint_every=2, precision="bf16"),
            log=messages.append).run(progress=False)
    assert any("precision 'fp32', now 'bf16'" in m for m in messages)
    sessions = [json.loads(line) for line in (tmp_path / "srresnet-mse" / "sessions.jsonl").read_text().splitlines()]
    assert [(s["from_step"], s["precision"]) for s in sessions] == [(0, "fp32"), (2, "bf16-autocast")]


def test_loss_weights_follow_the_recipe_the_backbone_and_the_run():
    from sr_models.training import resolve_loss_weights
    from sr_models.variants import PAPER_VGG_RESCALE

    mse, gan54, gan_mse = get_variant("srresnet-mse"), get_variant("srgan-vgg54"), get_variant("srgan-mse")
    assert resolve_loss_weights(mse, "vgg16") == mse.paper_loss_weights  # no deviation at all
    assert resolve_loss_weights(gan_mse, "vgg16") == gan_mse.paper_loss_weights
    w = resolve_loss_weights(gan54, "vgg16")
    assert (w.adversarial, w.low_frequency, w.vgg_rescale) == (1e-4, 1.0, 0.18)
    assert resolve_loss_weights(gan54, "vgg19").vgg_rescale == PAPER_VGG_RESCALE  # the paper's own backbone
    assert resolve_loss_weights(get_variant("srgan-vgg22"), "vgg16").vgg_rescale == PAPER_VGG_RESCALE
    paper = resolve_loss_weights(gan54, "vgg19", adversarial=1e-3, low_frequency=0.0)
    assert paper == gan54.paper_loss_weights
    with pytest.raises(ValueError, match="adversarial weight must be positive"):
        resolve_loss_weights(gan54, "vgg16", adversarial=0.0)
    with pytest.raises(ValueError, match="no discriminator"):
        resolve_loss_weights(mse, "vgg16", adversarial=1e-3)
    with pytest.raises(ValueError, match="VGG rescale"):
        resolve_loss_weights(gan54, "vgg16", vgg_rescale=0.0)


def test_the_low_frequency_loss_is_trained_and_logged_where_the_recipe_has_it(tmp_path, datasets_root, mse_init):
    runs = {}
    for variant, lf in (("srresnet-vgg22", None), ("srresnet-vgg22-paper", 0.0)):
        name = variant.removesuffix("-paper")
        config = tiny_config(tmp_path / variant, datasets_root, name, steps=2, init_weights=str(mse_init),
                             low_frequency_weight=lf)
        Trainer(config, log=lambda m: None).run(progress=False)
        runs[variant] = read_losses(tmp_path / variant / name)
    assert all(float(r["low_frequency"]) > 0 for r in runs["srresnet-vgg22"])
    assert all(float(r["low_frequency"]) == 0 for r in runs["srresnet-vgg22-paper"])
    with_lf = runs["srresnet-vgg22"][0]
    assert float(with_lf["g_total"]) == pytest.approx(
        float(with_lf["content"]) + 2e-8 * float(with_lf["tv"]) + float(with_lf["low_frequency"]), rel=1e-4)


def test_the_grid_loss_is_trained_and_logged_only_when_asked_for(tmp_path, datasets_root, mse_init):
    # A weight that never reached the generator's loss (or reached it unlogged) would leave g_total
    # equal to the other terms; a run without it must log 0, as the paper's loss has no such term.
    rows = {}
    for name, grid in (("with", 5.0), ("without", None)):
        config = tiny_config(tmp_path / name, datasets_root, "srgan-mse", steps=2, init_weights=str(mse_init),
                             grid_weight=grid)
        Trainer(config, log=lambda m: None).run(progress=False)
        rows[name] = read_losses(tmp_path / name / "srgan-mse")
    assert all(float(r["grid"]) == 0 for r in rows["without"])
    for r in rows["with"]:
        assert float(r["grid"]) > 0
        assert float(r["g_total"]) == pytest.approx(
            float(r["content"]) + 1e-3 * float(r["adversarial"]) + 5.0 * float(r["grid"]), rel=1e-4)
    with pytest.raises(ValueError, match="grid weights must be >= 0"):
        Trainer(tiny_config(tmp_path / "bad", datasets_root, "srgan-mse", grid_weight=-1.0))


def test_a_multi_layer_content_loss_is_trained_and_checked(tmp_path, datasets_root, mse_init):
    # The layers reach the generator's loss (a run that ignored them would log the one-layer content
    # loss of the same first step), and layers that would change what --vgg-rescale means are refused.
    contents = {}
    for name, layers in (("multi", ("vgg12", "vgg22", "vgg34", "vgg44", "vgg54")), ("single", None)):
        config = tiny_config(tmp_path / name, datasets_root, "srgan-vgg54", steps=1, init_weights=str(mse_init),
                             content_layers=layers)
        Trainer(config, log=lambda m: None).run(progress=False)
        contents[name] = float(read_losses(tmp_path / name / "srgan-vgg54")[0]["content"])
    assert contents["multi"] != pytest.approx(contents["single"], rel=1e-3)
    for variant, layers, match in (("srgan-vgg54", ("vgg12",), "must be among them and the deepest"),
                                   ("srgan-vgg22", ("vgg22", "vgg34"), "must be among them and the deepest"),
                                   ("srgan-mse", ("vgg22",), "pixel content loss")):
        with pytest.raises(ValueError, match=match):
            Trainer(tiny_config(tmp_path / "bad", datasets_root, variant, content_layers=layers))


def test_resume_refuses_other_loss_weights(tmp_path, datasets_root, mse_init):
    first = tiny_config(tmp_path, datasets_root, "srgan-mse", steps=3, init_weights=str(mse_init))
    Trainer(first, log=lambda m: None).run(progress=False, until=1)
    other = tiny_config(tmp_path, datasets_root, "srgan-mse", steps=3, init_weights=str(mse_init),
                        adversarial_weight=1e-4)
    with pytest.raises(ValueError, match=r"adversarial_weight: None -> 0\.0001"):
        Trainer(other, log=lambda m: None).run(progress=False)


def test_relativistic_gan_loss_trains_and_is_part_of_the_run(tmp_path, datasets_root, mse_init):
    """The relativistic option changes what D and G are trained on (a run that ignored it would log the
    standard losses), and a resume that changes it is refused like a changed weight."""
    standard = tiny_config(tmp_path / "a", datasets_root, "srgan-mse", steps=2, init_weights=str(mse_init))
    relativistic = tiny_config(tmp_path / "b", datasets_root, "srgan-mse", steps=2, init_weights=str(mse_init),
                               gan_loss="relativistic")
    Trainer(standard, log=lambda m: None).run(progress=False)
    Trainer(relativistic, log=lambda m: None).run(progress=False)
    first_standard = read_losses(tmp_path / "a" / "srgan-mse")[0]
    first_relativistic = read_losses(tmp_path / "b" / "srgan-mse")[0]
    # Step 1's D update sees the same batch and initial D in both runs: only the loss differs.
    assert float(first_standard["d_real"]) == pytest.approx(float(first_relativistic["d_real"]), rel=1e-5)
    assert float(first_standard["d_loss"]) != pytest.approx(float(first_relativistic["d_loss"]), rel=1e-3)
    again = tiny_config(tmp_path / "b", datasets_root, "srgan-mse", steps=3, init_weights=str(mse_init))
    with pytest.raises(ValueError, match=r"gan_loss: 'relativistic' -> 'standard'"):
        Trainer(again, log=lambda m: None).run(progress=False)
    with pytest.raises(ValueError, match="no discriminator"):
        Trainer(tiny_config(tmp_path / "c", datasets_root, "srresnet-mse", gan_loss="relativistic"))
    with pytest.raises(ValueError, match="is not one of"):
        Trainer(tiny_config(tmp_path / "d", datasets_root, "srgan-mse", gan_loss="wasserstein"))


def test_discriminator_lr_scale_sets_the_discriminator_rate_at_every_step(tmp_path, datasets_root, mse_init):
    """D's Adam runs at the scaled rate and G's at the schedule's, after the drop too (a scale applied to
    both optimizers, or only at the first step, fails here); a resume that changes it is refused, and
    a network without a discriminator or a scale of 0 is refused by name."""
    config = tiny_config(tmp_path, datasets_root, "srgan-mse", steps=4, init_weights=str(mse_init),
                         discriminator_lr_scale=0.25, lr_decay_at=0.5)
    trainer = Trainer(config, log=lambda m: None)
    trainer.run(progress=False, until=1)
    g_rate = trainer.g_opt.param_groups[0]["lr"]
    assert g_rate == pytest.approx(1e-3)
    assert trainer.d_opt.param_groups[0]["lr"] == pytest.approx(0.25 * g_rate)
    trainer.run(progress=False)  # steps 2-4: the rate drops 10x from step 3
    assert trainer.g_opt.param_groups[0]["lr"] == pytest.approx(1e-4)
    assert trainer.d_opt.param_groups[0]["lr"] == pytest.approx(0.25e-4)
    again = tiny_config(tmp_path, datasets_root, "srgan-mse", steps=5, init_weights=str(mse_init), lr_decay_at=0.5)
    with pytest.raises(ValueError, match=r"discriminator_lr_scale: 0\.25 -> 1\.0"):
        Trainer(again, log=lambda m: None).run(progress=False)
    with pytest.raises(ValueError, match="no discriminator"):
        Trainer(tiny_config(tmp_path / "c", datasets_root, "srresnet-mse", discriminator_lr_scale=0.5))
    with pytest.raises(ValueError, match="must be positive"):
        Trainer(tiny_config(tmp_path / "d", datasets_root, "srgan-mse", discriminator_lr_scale=0.0))


def test_discriminator_warmup_trains_the_discriminator_alone_then_both(tmp_path, datasets_root, mse_init):
    """For the first N steps the generator's weights and optimiser stay exactly as loaded while the
    discriminator learns; from step N+1 both move (a warm-up that still steps G, that never ends, or
    that freezes D fails here); the log leaves G's losses empty in the warm-up, and a warm-up on a
    network without a discriminator, or as long as the run, is refused by name."""
    config = tiny_config(tmp_path, datasets_root, "srgan-mse", steps=4, init_weights=str(mse_init),
                         discriminator_warmup_steps=2)
    trainer = Trainer(config, log=lambda m: None)
    trainer.run(progress=False, until=0)
    g_start = {k: v.clone() for k, v in trainer.generator.state_dict().items()}
    d_start = {k: v.clone() for k, v in trainer.discriminator.state_dict().items()}
    trainer.run(progress=False, until=2)
    assert all(torch.equal(v, g_start[k]) for k, v in trainer.generator.state_dict().items())
    assert not trainer.g_opt.state  # Adam never stepped: no moments to carry into the first G step
    assert any(not torch.equal(v, d_start[k]) for k, v in trainer.discriminator.state_dict().items())
    trainer.run(progress=False)
    assert any(not torch.equal(v, g_start[k]) for k, v in trainer.generator.state_dict().items())
    rows = list(csv.DictReader(open(trainer.out / "losses.csv")))
    assert [r["content"] == "nan" for r in rows] == [True, True, False, False]
    assert all(float(r["d_loss"]) > 0 for r in rows)
    with pytest.raises(ValueError, match="no discriminator"):
        Trainer(tiny_config(tmp_path / "c", datasets_root, "srresnet-mse", discriminator_warmup_steps=2))
    with pytest.raises(ValueError, match="discriminator_warmup_steps must be in"):
        Trainer(tiny_config(tmp_path / "d", datasets_root, "srgan-mse", steps=4, discriminator_warmup_steps=4))


def test_a_run_saved_before_a_setting_existed_resumes_with_its_default(tmp_path, datasets_root, mse_init):
    """A config.json written before gan_loss existed lacks the key; it meant the default, so resuming
    must not be refused as a change (runs/ from earlier sessions resume)."""
    config = tiny_config(tmp_path, datasets_root, "srgan-mse", steps=2, init_weights=str(mse_init))
    Trainer(config, log=lambda m: None).run(progress=False, until=1)
    saved = tmp_path / "srgan-mse" / "config.json"
    data = json.loads(saved.read_text())
    del data["gan_loss"]
    saved.write_text(json.dumps(data))
    assert Trainer(config, log=lambda m: None).run(progress=False)["step"] == 2


def test_validation_runs_every_n_steps_and_at_the_last(tmp_path, datasets_root):
    config = tiny_config(tmp_path, datasets_root, "srresnet-mse", steps=5, validate_every=3, validation_set="Set5")
    result = Trainer(config, log=lambda m: None).run(progress=False)
    with open(tmp_path / "srresnet-mse" / "validation.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows] == [3, 5]
    assert result["validation"]["step"] == 5 and 10 < result["validation"]["psnr_y"] < 40


def test_snapshots_keep_the_generator_of_every_nth_step_across_a_resume(tmp_path, datasets_root):
    # Catches: snapshots taken from another step's weights (e.g. before the step's update or at the
    # checkpoint only), a resume that drops keep_every or refuses it as a changed setting, and an old
    # run (saved without keep_every) that could not be resumed with it.
    config = tiny_config(tmp_path, datasets_root, "srresnet-mse", steps=4, checkpoint_every=1)
    Trainer(config, log=lambda m: None).run(progress=False, until=2)
    at_step = {}
    for step in (3, 4):
        probe = tiny_config(tmp_path / f"probe{step}", datasets_root, "srresnet-mse", steps=4, checkpoint_every=1)
        Trainer(probe, log=lambda m: None).run(progress=False, until=step)
        at_step[step] = load_generator(Path(probe.out_dir) / "last.pt").state_dict()
    resumed = tiny_config(tmp_path, datasets_root, "srresnet-mse", steps=4, checkpoint_every=1, keep_every=1)
    Trainer(resumed, log=lambda m: None).run(progress=False)
    snapshots = sorted(p.name for p in (Path(resumed.out_dir) / "snapshots").iterdir())
    assert snapshots == ["g_000003.safetensors", "g_000004.safetensors"]  # none before the resume asked
    for step, state in at_step.items():
        kept = load_generator(Path(resumed.out_dir) / "snapshots" / f"g_{step:06d}.safetensors").state_dict()
        assert all(torch.equal(kept[k], state[k]) for k in state), step
