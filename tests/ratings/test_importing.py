"""import_ratings: the checks and orders that the mutation run of issue 16 found unpinned.

The wider import/export behaviour (all or nothing, errors by line, the report) is in
``test_import_export.py``.
"""

from __future__ import annotations

import re

import pytest
from django.core.exceptions import ValidationError

from analysis.io import RatingsFileError
from ratings.importing import StudyNameError, import_ratings
from ratings.models import Rating, SessionItem, Study
from ratings.study_file import RatingDesign, StudyFileError, parse_study_file, validate_study_name

pytestmark = pytest.mark.django_db


def test_an_unknown_image_of_a_known_dataset_is_reported_by_line(tmp_path, media_root):
    """Catches the unknown image skipped (or imported unlinked) instead of reported: Set5 has no img_999."""
    path = tmp_path / "typo.csv"
    path.write_text("rater,dataset,image,method,score\n"
                    "a,Set5,img_001,bicubic,3\n"
                    "a,Set5,img_999,bicubic,4\n"
                    "b,Set5,img_999,bicubic,2\n")
    with pytest.raises(RatingsFileError) as info:
        import_ratings(path, "typo")
    assert [(e.line, e.reason) for e in info.value.errors] == [(3, "dataset Set5 has no image 'img_999'")]
    assert not Study.objects.exists() and Rating.objects.count() == 0


def test_the_position_column_orders_each_raters_items(tmp_path, media_root):
    """Catches the ``position`` column ignored: the file lists a rater's ratings out of order."""
    path = tmp_path / "ordered.csv"
    path.write_text("rater,dataset,image,method,score,position\n"
                    "a,Set5,img_003,bicubic,3,3\n"
                    "a,Set5,img_001,bicubic,1,1\n"
                    "b,Set5,img_001,bicubic,5,2\n"
                    "a,Set5,img_002,bicubic,2,2\n"
                    "b,Set5,img_002,bicubic,4,1\n")
    import_ratings(path, "ordered")

    def order(label):
        return list(SessionItem.objects.filter(session__rater__label=label).order_by("position")
                    .values_list("stimulus__image__name", "rating__score"))

    assert order("a") == [("img_001", 1), ("img_002", 2), ("img_003", 3)]
    assert order("b") == [("img_002", 4), ("img_001", 5)]


def test_an_imported_study_has_a_design_without_calibration(tmp_path, media_root):
    """The study import_ratings creates stores a full design (no calibration, gold or repeats drawn) and
    its source beside it: catches config["rating"] = {"imported_from": ...}, which Study.design refuses,
    and calibration_images left at the study file's default of 20."""
    path = tmp_path / "lab.csv"
    path.write_text("rater,dataset,image,method,score\na,lab,img_1,bicubic,3\n")
    study = Study.objects.get(pk=import_ratings(path, "lab").study.pk)
    assert study.design == RatingDesign(calibration_images=0)
    assert study.config["imported_from"] == "lab.csv"


@pytest.mark.parametrize("name", ["Lab", "lab.v2", "-lab", "x" * 101])
def test_import_refuses_the_names_the_study_file_refuses(tmp_path, media_root, name):
    """One rule, Study.name's validator: catches import_ratings' old rule, which took capitals and a
    leading '-' the study file refuses. Nothing is read or stored."""
    path = tmp_path / "lab.csv"
    path.write_text("rater,dataset,image,method,score\na,lab,img_1,bicubic,3\n")
    with pytest.raises(StudyNameError) as info:
        import_ratings(path, name)
    with pytest.raises(ValidationError) as same:
        validate_study_name(name)
    assert str(info.value) == f"study name {name!r} {same.value.messages[0]}"
    with pytest.raises(StudyFileError, match=re.escape(same.value.messages[0])):
        parse_study_file(f'name = "{name}"\nseed = 1\ndatasets = ["lab"]\nmethods = ["bicubic"]\n', check_datasets=False)
    assert validate_study_name in Study._meta.get_field("name").validators
    assert not Study.objects.exists()
