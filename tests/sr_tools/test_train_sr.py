"""``manage.py train_sr``: a thin wrapper with settings defaults (the training itself is tested in
tests/sr_models/test_training.py)."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from sr_models import train as train_cli


def test_train_sr_runs_a_tiny_training_into_the_runs_folder(tmp_path, settings, datasets_root):
    settings.SR_RUNS_DIR = tmp_path / "runs"
    out = io.StringIO()
    call_command("train_sr", "srresnet-mse", "--steps", "2", "--batch-size", "2", "--crop-size", "48",
                 "--max-train-images", "2", "--validate-every", "0", "--no-progress", "--threads", "1",
                 "--device", "cpu", stdout=out)
    assert "finished srresnet-mse at step 2" in out.getvalue()
    assert (tmp_path / "runs" / "srresnet-mse" / "generator.safetensors").is_file()


def test_train_sr_reports_missing_vgg19_weights(tmp_path, settings):
    settings.SR_RUNS_DIR = tmp_path / "runs"
    with pytest.raises(CommandError, match="never downloads"):
        call_command("train_sr", "srgan-vgg54", "--backbone", "vgg19", "--vgg-weights", str(tmp_path / "none.pth"),
                     "--steps", "1", "--no-progress", stdout=io.StringIO(), stderr=io.StringIO())


def test_train_sr_and_python_m_sr_models_train_record_the_same_run(tmp_path, settings, datasets_root):
    """One path for both commands: the same options give the same recorded config, a GAN variant
    starting from the shipped generator its ``Variant.init_from`` names. Catches the command building
    the run itself again (its start written out as "srresnet-mse", or no start at all: init_weights
    None), or either command filling an option the other leaves to the recipe."""
    settings.SR_RUNS_DIR, settings.SR_WEIGHTS_DIR = tmp_path / "runs", train_cli.SHIPPED_WEIGHTS_DIR
    settings.SR_VGG_BACKBONE = "vgg16"  # python -m sr_models.train's default
    options = ["srgan-mse", "--steps", "1", "--batch-size", "2", "--crop-size", "48", "--max-train-images", "2",
               "--validate-every", "0", "--no-progress", "--threads", "1", "--device", "cpu",
               "--datasets-root", str(datasets_root)]
    out = io.StringIO()
    call_command("train_sr", *options, stdout=out)
    assert "initialising from the shipped srresnet-mse" in out.getvalue()
    assert train_cli.main([*options, "--out", str(tmp_path / "cli")]) == 0
    by_command = json.loads((tmp_path / "runs" / "srgan-mse" / "config.json").read_text())
    by_cli = json.loads((tmp_path / "cli" / "config.json").read_text())
    assert (by_command.pop("out_dir"), by_cli.pop("out_dir")) == (str(tmp_path / "runs" / "srgan-mse"),
                                                                  str(tmp_path / "cli"))
    assert by_command == by_cli
    assert by_cli["init_weights"] == str(train_cli.SHIPPED_WEIGHTS_DIR / "srresnet-mse.safetensors")
