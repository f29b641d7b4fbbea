"""run_study, study_status and invite_raters as a researcher sees them (in-process, no broker)."""

from __future__ import annotations

import io
import json
import re

import pytest
from django.core.management import CommandError, call_command

from ratings.models import Rater, Stimulus

pytestmark = pytest.mark.django_db

STUDY = """name = "cmd"
seed = 4
datasets = ["Set5"]
methods = ["nearest", "bicubic", "hr"]
[rating]
raters = 2
calibration_images = 1
"""


def run(*args):
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_run_study_makes_everything_prints_a_summary_and_resumes(study_file, media_root, weights_dir):
    path = study_file(STUDY)
    out = run("run_study", str(path))
    assert "created study cmd: 17 stimuli (17 new)" in out
    assert re.search(r"Set5\s+bicubic\s+5\s+28\.42\s+0\.8101", out)
    assert re.search(r"Set5\s+nearest\s+5\s+26\.25", out)
    assert "stimuli: 17 done, 0 to do, 0 failed" in out
    links = re.findall(r"r00\d: http://127\.0\.0\.1:8000/r/[\w-]+/", out)
    assert len(links) == 2 and Rater.objects.count() == 2
    assert "/join/" in out
    again = run("run_study", str(path))
    assert "resumed study cmd: 17 stimuli (0 new)" in again
    assert Stimulus.objects.count() == 17 and Rater.objects.count() == 2


def test_run_study_reports_a_bad_file_with_its_line(study_file, media_root):
    path = study_file(STUDY.replace('"bicubic"', '"bicubc"'))
    with pytest.raises(CommandError, match=r"line 4, key 'methods': unknown method 'bicubc'"):
        run("run_study", str(path))


def test_study_status_text_and_json(study_file, media_root, weights_dir):
    run("run_study", str(study_file(STUDY)))
    status = json.loads(run("study_status", "cmd", "--json"))
    assert status["stimuli"] == {"total": 17, "pending": 0, "queued": 0, "running": 0, "done": 17, "failed": 0}
    assert status["stimuli_per_method"]["hr"]["done"] == 6  # 5 test images + 1 calibration image
    assert status["raters"]["total"] == 2 and status["ratings"] == 0
    bicubic = next(m for m in status["metrics"] if m["method"] == "bicubic")
    assert bicubic["psnr_y"] == pytest.approx(28.4177, abs=1e-4)
    assert "study cmd (ready, seed 4)" in run("study_status", "cmd")
    with pytest.raises(CommandError, match="no study named 'nope' \\(studies: cmd\\)"):
        run("study_status", "nope")


def test_invite_raters_prints_one_link_per_line(study_file, media_root, weights_dir):
    run("run_study", str(study_file(STUDY)))
    out = run("invite_raters", "cmd", "--count", "3", "--base-url", "https://mos.example.org/")
    lines = out.strip().splitlines()
    assert len(lines) == 3
    tokens = [re.fullmatch(r"https://mos\.example\.org/r/([\w-]+)/", line).group(1) for line in lines]
    assert set(Rater.objects.filter(label__in=["r003", "r004", "r005"]).values_list("token", flat=True)) == set(tokens)
    with pytest.raises(CommandError, match="at least 1"):
        run("invite_raters", "cmd", "--count", "0")
