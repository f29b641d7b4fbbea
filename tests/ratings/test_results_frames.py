"""What enters the results: training answers never, screened-out sessions' answers only on request.

Issue 18: a worker who fails qualification or the attention checks has their data kept (in the
database, in crowd_decisions) and flagged, never in a MOS, a scale or the report's rater table.
"""

from __future__ import annotations

import pytest

from ratings import export
from ratings.models import Rating, Session, SessionItem

from .crowd_study import make_crowd_study, one_session_of_each_state
from .qualified import answer, qualified_study, started
from .test_sessions import skip_calibration

pytestmark = pytest.mark.django_db


def test_screened_out_ratings_stay_out_of_the_results_and_are_kept(datasets_root, media_root):
    """Catches a report built from every stored rating (the screened-out worker's answers in the MOS)
    and a frame that drops them from crowd_decisions' view too (their numbers shown nowhere)."""
    study = make_crowd_study(datasets_root)
    made = one_session_of_each_state(study)
    screened = made["screened_out"].label
    assert Rating.objects.filter(rater=made["screened_out"]).count() == 1  # kept in the database
    results = export.ratings_frame(study)
    everything = export.ratings_frame(study, results_only=False)
    assert screened not in set(results["rater_id"])
    assert (everything["rater_id"] == screened).sum() == 1
    assert len(everything) - len(results) == 1
    expired = made["expired"].label  # an expired session's ratings are results (they were given)
    assert (results["rater_id"] == expired).sum() == 2


def test_training_answers_are_in_no_frame(datasets_root, media_root):
    """Catches training ratings exported as results (the rater table's response times and counts
    would include them, and an exported CSV would carry them into another study)."""
    study = qualified_study(datasets_root)
    rater = started(study)
    skip_calibration(rater)
    training = SessionItem.objects.filter(session__rater=rater, kind=SessionItem.Kind.TRAINING).order_by("position")
    for item in training:
        answer(rater, item.expected_score)
    assert Rating.objects.filter(rater=rater, item__kind=SessionItem.Kind.TRAINING).count() == 4
    assert Session.objects.get(rater=rater).state == Session.State.RATING  # passed, now rating
    for frame in (export.ratings_frame(study), export.ratings_frame(study, results_only=False)):
        assert "training" not in set(frame["kind"])
