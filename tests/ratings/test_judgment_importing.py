"""import_ratings with a judgments file: the study created as paired, every judgment stored with its
sides, and the report made from it equal to the analysis of the file itself."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from analysis import pairwise
from analysis.pairwise_simulation import PairedPopulation, simulate_judgments
from ratings.export import judgments_frame
from ratings.models import Judgment, Study

pytestmark = pytest.mark.django_db
NAMES = {"m0": "bicubic", "m1": "srresnet-mse", "m2": "srgan-vgg54"}


@pytest.fixture
def judgments_file(tmp_path):
    frame, _ = simulate_judgments(6, 3, population=PairedPopulation(quality=(0.0, 0.7, 1.5)), seed=2)
    for col in ("method_a", "method_b", "choice"):
        frame[col] = frame[col].map(NAMES)
    frame["image"] = frame["image"].map({"img000": "img_001", "img001": "img_002", "img002": "img_003"})
    frame = frame.rename(columns={"rater_id": "rater"})
    frame["left"] = frame["method_b"]  # the file says the second method was on the left
    path = tmp_path / "judgments.csv"
    frame.to_csv(path, index=False)
    return path, frame


def test_a_judgments_file_makes_a_paired_study_with_the_files_sides(judgments_file, capsys):
    """Catches a judgments file read as ratings, sides taken from column order instead of ``left``,
    and choices stored for the other method. The scale from the database equals the scale of the file."""
    path, frame = judgments_file
    call_command("import_ratings", str(path), "--study", "pw-import")
    assert "54 judgments from 6 raters" in capsys.readouterr().out  # 6 raters x 3 images x 3 pairs
    study = Study.objects.get(name="pw-import")
    assert study.protocol == "pairwise" and Judgment.objects.filter(rater__study=study).count() == len(frame)
    stored = judgments_frame(study)
    assert (stored["method_a"] == stored["left"]).all()
    mine = frame.rename(columns={"rater": "rater_id"})
    key = ["rater_id", "image", "method_a", "method_b"]
    merged = stored.merge(mine.rename(columns={"method_a": "method_b", "method_b": "method_a"}), on=key,
                          suffixes=("", "_file"))
    assert len(merged) == len(frame) and (merged["choice"] == merged["choice_file"]).all()
    np.testing.assert_allclose(pairwise.fit_scale(pairwise.win_matrix(stored, list(NAMES.values()))).scores,
                               pairwise.fit_scale(pairwise.win_matrix(mine, list(NAMES.values()))).scores)


def test_a_bad_judgments_file_stores_nothing(judgments_file, tmp_path):
    path, frame = judgments_file
    frame.loc[3, "choice"] = "hr"
    bad = tmp_path / "bad.csv"
    frame.to_csv(bad, index=False)
    with pytest.raises(CommandError, match="line 5: choice 'hr' is neither"):
        call_command("import_ratings", str(bad), "--study", "pw-bad")
    assert not Study.objects.filter(name="pw-bad").exists()
