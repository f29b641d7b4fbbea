"""When a study opens to raters (every stimulus made, or failures accepted), and rater labels."""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest

from ratings import dispatch, generation, labels, progress, sessions, studies
from ratings.models import Rater, SessionItem, SourceImage, Stimulus, Study, StudyDataset
from ratings.study_file import RatingDesign, parse_study_file

from .conftest import RATING_STUDY

pytestmark = pytest.mark.django_db


@pytest.fixture
def study_with_failures(datasets_root, media_root, tmp_path):
    """RATING_STUDY where one test image, one calibration image and the first gold image lost their HR file."""
    study = studies.create_or_resume_study(parse_study_file(RATING_STUDY, "r.toml", datasets_root=datasets_root)).study
    calibration = list(StudyDataset.objects.get(study=study, role=StudyDataset.Role.CALIBRATION).images.order_by("pk"))
    gone = [calibration[0], calibration[study.calibration_images],
            SourceImage.objects.get(dataset__study=study, dataset__name="Set5", name="img_002")]
    for image in gone:
        SourceImage.objects.filter(pk=image.pk).update(hr_path=str(tmp_path / f"moved-{image.name}.png"))
    dispatch.enqueue_pending(study)
    study.refresh_from_db()
    return study


def test_a_study_with_failed_stimuli_is_not_opened_to_raters(study_with_failures):
    study = study_with_failures
    failed = Stimulus.objects.filter(study=study, state=Stimulus.State.FAILED)
    assert failed.count() == 3 + 2 + 2  # img_002 x 3 methods, two calibration images x {nearest, hr}
    assert "no such file" in failed.first().error
    assert study.state == Study.State.GENERATING
    assert generation.refresh_study_state(study.pk) == Study.State.GENERATING
    status = progress.study_status(study)
    assert status["incomplete"] and status["stimuli"]["failed"] == 7
    text = progress.format_status(status)
    assert "(incomplete: failed stimuli, not open to raters" in text and "--accept-failures" in text
    rater = studies.create_invitations(study, 1)[0]
    with pytest.raises(sessions.RatingRefused):
        sessions.start_session(rater)


def test_accepting_failures_opens_the_study_and_sessions_leave_the_failed_stimuli_out(study_with_failures):
    study = study_with_failures
    assert generation.refresh_study_state(study.pk, accept_failures=True) == Study.State.READY
    assert generation.failed_stimuli(study)[:3] == ["Set5/img_002 [nearest]", "Set5/img_002 [bicubic]",
                                                    "Set5/img_002 [hr]"]
    rater = studies.create_invitations(study, 1)[0]
    session = sessions.start_session(rater)  # calibration and gold stimuli that failed do not raise
    items = list(SessionItem.objects.filter(session=session).select_related("stimulus"))
    assert {i.stimulus.state for i in items} == {Stimulus.State.DONE}
    kinds = Counter(i.kind for i in items)
    # One calibration pair of two, 12 of 15 test stimuli, both repeats (img_001, img_003), one gold item of two.
    assert kinds == {"calibration": 2, "test": 12, "repeat": 2, "gold": 1}
    session.refresh_from_db()
    assert (session.calibration_items, session.planned_scored_items) == (2, 15)
    assert [i.kind for i in items[:2]] == ["calibration", "calibration"]
    assert [i.expected_score for i in items[:2]] == [1, 5]


def test_a_study_opens_only_when_every_stimulus_is_done(rating_study):
    assert rating_study.state == Study.State.READY
    assert not progress.study_status(rating_study)["incomplete"]


# -- rater labels ------------------------------------------------------------------------------------
def test_invitation_labels_continue_after_the_highest_even_after_a_deletion(rating_study):
    assert [r.label for r in studies.create_invitations(rating_study, 3)] == ["r001", "r002", "r003"]
    Rater.objects.get(study=rating_study, label="r002").delete()
    assert [r.label for r in studies.create_invitations(rating_study, 2)] == ["r004", "r005"]
    assert labels.next_label_number(rating_study, "r") == 6


# -- the rating design: stored once, in config["rating"] --------------------------------------------
def test_the_study_file_design_is_what_the_study_reads(datasets_root, media_root):
    """create_or_resume_study stores the [rating] table and Study.design, and the old attribute names,
    read it back from the database: catches the design left out of config (the old copy into columns
    was the only store the platform read)."""
    config = parse_study_file(RATING_STUDY.replace("gold_items = 2", "gold_items = 2\nbreak_every = 7\nraters = 3"),
                              "r.toml", datasets_root=datasets_root)
    created = studies.create_or_resume_study(config).study
    study = Study.objects.get(pk=created.pk)
    assert study.design == config.rating
    assert (study.raters_target, study.break_every, study.gold_items, study.calibration_images) == (3, 7, 2, 2)
    assert (study.repeat_dataset, study.repeat_method, study.repeat_images) == ("Set5", "bicubic", 2)
    assert study.assignment == Study.Assignment.ALL and study.config_sha256 == config.sha256


def test_the_design_is_parsed_once_per_instance_and_again_when_config_changes():
    """Catches a design cached past a change of config (a stale cached_property) and one parsed on every read."""
    study = Study(name="x", seed=1, config_text="", config={"rating": {"break_every": 5}})
    assert study.design is study.design and study.break_every == 5
    study.config["rating"]["break_every"] = 9
    assert study.break_every == 9
    study.config = {}
    assert study.design == RatingDesign()  # the study file's defaults, as a file without [rating]


OLD_TEXT = 'name = "old"\nseed = 3\ndatasets = ["Set5"]\nmethods = ["bicubic"]\n[rating]\nbreak_every = 100\n'


@pytest.mark.django_db(transaction=True)
def test_an_old_shape_study_migrates_to_the_same_design():
    """Migration 0007 rebuilds config["rating"] from the old columns (what the platform read) and moves
    an imported study's imported_from out of the design: catches a migration that keeps the stale
    JSON (break_every 100 here, 5 in the column), drops a column's value, or leaves a key that
    RatingDesign refuses."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before = [("ratings", "0006_rating_matches_item")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    try:
        OldStudy = executor.loader.project_state(before).apps.get_model("ratings", "Study")
        stale = {"raters": 26, "calibration_images": 20, "gold_items": 4, "break_every": 100, "assignment": "all",
                 "ratings_per_stimulus": 0, "items_per_rater": 0, "repeat_dataset": "", "repeat_method": "",
                 "repeat_images": 0}
        OldStudy.objects.create(
            name="old", seed=3, config_text=OLD_TEXT, config={"name": "old", "rating": stale}, config_sha256="stale",
            raters_target=26, calibration_images=20, gold_items=4, break_every=5, assignment="balanced",
            ratings_per_stimulus=3, items_per_rater=50, repeat_dataset="Set5", repeat_method="bicubic", repeat_images=2)
        OldStudy.objects.create(name="lab", seed=0, config_text="# imported\n", config={"rating": {"imported_from": "lab.csv"}},
                                config_sha256="x", calibration_images=0)
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
    old = Study.objects.get(name="old")
    assert old.design == RatingDesign(raters=26, calibration_images=20, gold_items=4, break_every=5,
                                      assignment="balanced", ratings_per_stimulus=3, items_per_rater=50,
                                      repeat_dataset="Set5", repeat_method="bicubic", repeat_images=2)
    assert old.config_sha256 == hashlib.sha256(OLD_TEXT.encode()).hexdigest()
    lab = Study.objects.get(name="lab")
    assert lab.design == RatingDesign(calibration_images=0)
    assert lab.config["imported_from"] == "lab.csv" and "imported_from" not in lab.config["rating"]
