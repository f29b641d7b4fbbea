"""``manage.py train_sr``: a thin wrapper with settings defaults (the training itself is tested in
tests/sr_models/test_training.py)."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command


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
