"""A paired study in the database: its design read back from config, and kept once answers exist."""

from __future__ import annotations

import pytest

from ratings import studies
from ratings.models import Judgment, Session, SessionItem, Stimulus
from ratings.study_file import parse_study_file

pytestmark = pytest.mark.django_db

PAIRED = """name = "pw"
seed = 3
datasets = ["Set5"]
methods = ["bicubic", "srgan-vgg54", "hr"]
protocol = "pairwise"

[pairwise]
design = "balanced"
judgments_per_rater = 6
judgments_per_pair = 2
"""


def test_the_design_is_read_back_and_frozen_once_judged(datasets_root, media_root):
    """Study.pairwise equals the parsed design; once a judgment exists the design (and the protocol)
    cannot change - catches a conflict check that counts ratings only."""
    config = parse_study_file(PAIRED, "p.toml", datasets_root=datasets_root)
    study = studies.create_or_resume_study(config).study
    assert study.protocol == "pairwise" and study.is_paired and study.pairwise == config.pairwise
    changed = parse_study_file(PAIRED.replace("judgments_per_pair = 2", "judgments_per_pair = 3"), "p.toml",
                               datasets_root=datasets_root)
    studies.create_or_resume_study(changed)  # nothing judged yet: the design may still change
    rater = studies.create_invitations(study, 1)[0]
    image = Stimulus.objects.filter(study=study).first().image
    left, right = Stimulus.objects.filter(study=study, image=image).exclude(condition__name="hr")[:2]
    item = SessionItem.objects.create(session=Session.objects.get_or_create(rater=rater)[0], position=0,
                                      stimulus=left, right_stimulus=right, kind="test")
    Judgment.objects.create(item=item, rater=rater, side="left")
    with pytest.raises(studies.StudyConflict, match="protocol and \\[pairwise\\] design cannot change"):
        studies.create_or_resume_study(config)
