"""The crowd study files the README walks through (studies/demo_prolific.toml, demo_mturk.toml) parse."""

from __future__ import annotations

import pytest

from ratings.crowd import study_link
from ratings.study_file import load_study_file
from tests.conftest import REPO


def test_prolific_demo_is_a_prolific_study_with_every_table(datasets_root):
    """Catches the README's Prolific example drifting from what the study file accepts (a renamed
    key is refused by the parser) and a link without Prolific's placeholders."""
    config = load_study_file(REPO / "studies" / "demo_prolific.toml", datasets_root=datasets_root)
    assert config.crowd.platform == "prolific" and config.crowd.stall_minutes == 45
    assert config.crowd.completion_url == "https://app.prolific.com/submissions/complete?cc={code}"
    assert config.qualification.devices == ("desktop",) and config.attention.straight_line == 12
    assert config.rating.assignment == "balanced" and config.rating.raters == 0  # no invitations
    link = study_link(config.crowd, "https://ratings.example.org/join/TOKEN/")
    assert link == ("https://ratings.example.org/join/TOKEN/?PROLIFIC_PID={{%PROLIFIC_PID%}}"
                    "&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}")


def test_mturk_demo_is_an_mturk_study_without_completion_urls(datasets_root):
    """Catches the MTurk example carrying a completion URL (MTurk workers submit back to MTurk) or
    losing its worker checks."""
    config = load_study_file(REPO / "studies" / "demo_mturk.toml", datasets_root=datasets_root)
    assert config.crowd.platform == "mturk" and config.crowd.completion_url == ""
    assert config.qualification.training_items == 4 and config.attention.end_session
    assert study_link(config.crowd, "https://ratings.example.org/join/TOKEN/") == "https://ratings.example.org/join/TOKEN/"


@pytest.mark.parametrize("name", ["demo_prolific.toml", "demo_mturk.toml"])
def test_crowd_demos_name_only_methods_whose_weights_ship(datasets_root, name):
    """Catches a network without shipped weights: run_study on a fresh clone would fail on it."""
    from sr_models.methods import NETWORK_METHODS, get_upscaler

    config = load_study_file(REPO / "studies" / name, datasets_root=datasets_root)
    for method in (m for m in config.methods["Set5"] if m in NETWORK_METHODS):
        get_upscaler(method, weights_dir=REPO / "sr_models" / "weights", device="cpu")
