"""The analysis modules stay free of Django and of the ratings app (checked in a fresh interpreter)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODULES = ["analysis", "analysis.stats", "analysis.screening", "analysis.planning", "analysis.plots",
           "analysis.report", "analysis.tables", "analysis.io"]  # fmt: skip


def test_analysis_modules_do_not_import_django_or_ratings():
    code = (
        "import importlib, json, sys\n"
        f"for name in {MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('django', 'ratings', 'mos_site'))))\n"
        "print(json.dumps('matplotlib.pyplot' in sys.modules))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    leaked, pyplot = (json.loads(line) for line in proc.stdout.strip().splitlines())
    assert leaked == []
    assert pyplot is False  # figures are made without pyplot's global state
