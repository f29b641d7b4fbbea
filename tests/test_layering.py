"""sr_models and analysis's statistics run on machines without Django: keep them free of it."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

SR_MODULES = [
    "sr_models.resize",
    "sr_models.metrics",
    "sr_models.images",
    "sr_models.datasets",
    "sr_models.networks",
    "sr_models.losses",
    "sr_models.vgg",
    "sr_models.training",
    "sr_models.inference",
    "sr_models.methods",
    "sr_models.evaluation",
    "sr_models.train",
    "sr_models.lpips",
    "sr_models.sharpness",
]


def test_sr_models_never_imports_django():
    code = "import sys\n" + "".join(f"import {m}\n" for m in SR_MODULES) + (
        "bad = [m for m in sys.modules if m == 'django' or m.startswith(('django.', 'ratings', 'analysis'))]\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
