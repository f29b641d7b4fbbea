"""A paired judgment belongs to a pair item of its own rater, once, on every path that writes.

Held by check constraints and triggers (migration 0008); run on SQLite and on PostgreSQL. Each test
would pass without the rule it names, so each catches that rule missing - and the last one catches
0006's rating triggers lost when 0008 remade the session item table on SQLite.
"""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from ratings.models import (
    Condition,
    Judgment,
    Rater,
    Rating,
    Session,
    SessionItem,
    SourceImage,
    Stimulus,
    Study,
    StudyDataset,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def pairs():
    """Two raters, each with one pair item (bicubic left, srgan right) and one single item."""
    study = Study.objects.create(name="pairs", seed=1, config_text="", config={"protocol": "pairwise"})
    dataset = StudyDataset.objects.create(study=study, name="Set5", folder="-")
    image = SourceImage.objects.create(dataset=dataset, name="baby", hr_path="-", hr_sha256="0", width=8, height=8)
    stimuli = [Stimulus.objects.create(study=study, image=image, condition=Condition.objects.create(
        study=study, name=name, kind=Condition.Kind.INTERPOLATION)) for name in ("bicubic", "srgan")]
    raters, items = [], {}
    for label in ("a", "b"):
        rater = Rater.objects.create(study=study, label=label)
        session = Session.objects.create(rater=rater)
        raters.append(rater)
        items[label] = (SessionItem.objects.create(session=session, position=0, stimulus=stimuli[0],
                                                   right_stimulus=stimuli[1], kind="test"),
                        SessionItem.objects.create(session=session, position=1, stimulus=stimuli[0], kind="test"))
    return raters, stimuli, items


def refused(write, match: str = "judgment_matches_item") -> None:
    with pytest.raises(IntegrityError, match=match), transaction.atomic():
        write()


def test_a_judgment_needs_its_own_raters_pair_item(pairs):
    """create, bulk_create and update(): catches a missing insert or update trigger."""
    (a, b), _, items = pairs
    pair, single = items["a"]
    refused(lambda: Judgment.objects.create(item=pair, rater=b, side="left"))
    refused(lambda: Judgment.objects.create(item=single, rater=a, side="left"))  # not a pair
    refused(lambda: Judgment.objects.bulk_create([Judgment(item=items["b"][0], rater=b, side="right"),
                                                  Judgment(item=pair, rater=b, side="left")]))
    assert not Judgment.objects.exists()
    judgment = Judgment.objects.create(item=pair, rater=a, side="right")
    refused(lambda: Judgment.objects.filter(pk=judgment.pk).update(rater=b))
    assert judgment.chosen_stimulus_id == pair.right_stimulus_id


def test_one_judgment_per_item_and_the_side_is_left_or_right(pairs):
    """Catches a replayed answer stored twice, and a choice that is neither side."""
    (a, _), _, items = pairs
    pair = items["a"][0]
    Judgment.objects.create(item=pair, rater=a, side="left")
    refused(lambda: Judgment.objects.create(item=pair, rater=a, side="right"), match="unique|UNIQUE|duplicate")
    refused(lambda: Judgment.objects.filter(item=pair).update(side="up"), match="judgment_side|CHECK|check")


def test_a_judged_pair_and_its_session_do_not_change(pairs):
    """Swapping a judged pair's sides would flip the answer's meaning: catches no item trigger."""
    (a, b), (s0, s1), items = pairs
    pair = items["a"][0]
    Judgment.objects.create(item=pair, rater=a, side="left")
    refused(lambda: SessionItem.objects.filter(pk=pair.pk).update(stimulus=s1, right_stimulus=s0))
    refused(lambda: Session.objects.filter(pk=pair.session_id).update(rater=b))
    SessionItem.objects.filter(pk=pair.pk).update(shown_at=None)  # other columns change freely


def test_a_pair_shows_two_stimuli_and_only_a_pair_has_an_expected_side(pairs):
    (a, _), (s0, _), items = pairs
    session = items["a"][0].session
    refused(lambda: SessionItem.objects.create(session=session, position=5, stimulus=s0, right_stimulus=s0, kind="test"),
            match="pair_of_two_stimuli|CHECK|check")
    refused(lambda: SessionItem.objects.create(session=session, position=6, stimulus=s0, expected_side="left",
                                               kind="gold"), match="expected_side_of_a_pair|CHECK|check")


def test_rating_triggers_survive_the_session_item_table_being_remade(pairs):
    """0008 remakes ratings_sessionitem on SQLite, which drops 0006's trigger on it: changing a rated
    item's stimulus must still be refused."""
    (a, _), (s0, s1), items = pairs
    single = items["a"][1]
    Rating.objects.create(item=single, rater=a, stimulus=s0, score=3)
    refused(lambda: SessionItem.objects.filter(pk=single.pk).update(stimulus=s1), match="rating_matches_item")
