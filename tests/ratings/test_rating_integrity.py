"""A rating's rater and stimulus are its item's session rater and stimulus, on every path that writes.

Held by triggers (migration 0006); each test names the path it covers, and would pass without the
trigger for that path, so each catches the trigger missing or dropped (SQLite drops a table's
triggers when a migration remakes the table). Run on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import threading

import pytest
from django.db import IntegrityError, connection, connections, transaction

from ratings.importing import import_ratings
from ratings.models import Condition, Rater, Rating, Session, SessionItem, SourceImage, Stimulus, Study, StudyDataset

pytestmark = pytest.mark.django_db

REFUSED = "rating_matches_item"


@pytest.fixture
def rows():
    """Two raters, each with a session of two items on two stimuli; no ratings yet."""
    study = Study.objects.create(name="integrity", seed=1, config_text="", config={})
    condition = Condition.objects.create(study=study, name="bicubic", kind=Condition.Kind.INTERPOLATION)
    dataset = StudyDataset.objects.create(study=study, name="Set5", folder="-")
    stimuli = []
    for k in range(2):
        image = SourceImage.objects.create(dataset=dataset, name=f"img_{k}", hr_path="-", hr_sha256="0", width=8, height=8)
        stimuli.append(Stimulus.objects.create(study=study, image=image, condition=condition))
    raters, items = [], {}
    for label in ("a", "b"):
        rater = Rater.objects.create(study=study, label=label)
        session = Session.objects.create(rater=rater)
        raters.append(rater)
        items[label] = [SessionItem.objects.create(session=session, position=k, stimulus=s, kind="test")
                        for k, s in enumerate(stimuli)]
    return raters, stimuli, items


def refused(write) -> None:
    with pytest.raises(IntegrityError, match=REFUSED), transaction.atomic():
        write()


def test_create_with_another_raters_or_stimulus_is_refused(rows):
    """Rating.objects.create (the rater flow's path): catches no insert trigger."""
    (a, b), (s0, s1), items = rows
    item = items["a"][0]
    refused(lambda: Rating.objects.create(item=item, rater=b, stimulus=s0, score=3))
    refused(lambda: Rating.objects.create(item=item, rater=a, stimulus=s1, score=3))
    Rating.objects.create(item=item, rater=a, stimulus=s0, score=3)
    assert Rating.objects.get().item_id == item.pk


def test_bulk_create_with_one_wrong_row_stores_none(rows):
    """bulk_create (import_ratings' path) is one multi-row INSERT: catches a check done only in
    Python (save(), a signal), which bulk_create skips."""
    (a, b), (_, s1), items = rows
    good = [Rating(item=i, rater=a, stimulus=i.stimulus, score=4) for i in items["a"]]
    wrong = Rating(item=items["b"][0], rater=b, stimulus=s1, score=4)
    refused(lambda: Rating.objects.bulk_create([*good, wrong]))
    assert not Rating.objects.exists()
    Rating.objects.bulk_create(good)
    assert Rating.objects.count() == 2


def test_update_of_rater_stimulus_or_item_is_refused(rows):
    """QuerySet.update() and save() of a changed rating: catches an insert-only trigger."""
    (a, b), (s0, s1), items = rows
    rating = Rating.objects.create(item=items["a"][0], rater=a, stimulus=s0, score=2)
    ratings = Rating.objects.filter(pk=rating.pk)
    refused(lambda: ratings.update(rater=b))
    refused(lambda: ratings.update(stimulus=s1))
    refused(lambda: ratings.update(item=items["b"][0]))  # b's item: the rater no longer matches
    rating.stimulus = s1
    refused(rating.save)
    ratings.update(score=5)  # other columns change freely
    assert ratings.values_list("rater", "stimulus", "score").get() == (a.pk, s0.pk, 5)


def test_raw_sql_insert_and_update_are_refused(rows):
    """Raw SQL, past the ORM: catches any check in Python instead of in the database."""
    (a, b), (s0, s1), items = rows
    table = Rating._meta.db_table
    insert = (f"INSERT INTO {table} (item_id, rater_id, stimulus_id, score, created_at) "
              f"VALUES (%s, %s, %s, 3, CURRENT_TIMESTAMP)")
    with connection.cursor() as cursor:
        refused(lambda: cursor.execute(insert, [items["a"][1].pk, b.pk, s1.pk]))
        refused(lambda: cursor.execute(insert, [items["a"][1].pk, a.pk, s0.pk]))
        cursor.execute(insert, [items["a"][1].pk, a.pk, s1.pk])
        refused(lambda: cursor.execute(f"UPDATE {table} SET rater_id = %s", [b.pk]))
    assert Rating.objects.values_list("item", "rater", "stimulus").get() == (items["a"][1].pk, a.pk, s1.pk)


def test_the_item_or_session_under_a_rating_cannot_change(rows):
    """Changing the other side (an item's stimulus or session, a session's rater) would make the rating
    differ as surely: catches triggers on ratings_rating alone."""
    (a, b), (s0, s1), items = rows
    item = items["a"][0]
    Rating.objects.create(item=item, rater=a, stimulus=s0, score=1)
    refused(lambda: SessionItem.objects.filter(pk=item.pk).update(stimulus=s1))
    refused(lambda: SessionItem.objects.filter(pk=item.pk).update(session=b.session, position=7))
    spare = Rater.objects.create(study=a.study, label="c")
    refused(lambda: Session.objects.filter(pk=a.session.pk).update(rater=spare))
    # An item without a rating is still free to change (sessions are redrawn before rating starts).
    SessionItem.objects.filter(pk=items["a"][1].pk).update(stimulus=s0)
    SessionItem.objects.filter(pk=item.pk).update(shown_at="2026-01-01T00:00:00Z")


def test_importing_a_valid_csv_still_works(tmp_path, media_root):
    """import_ratings writes through bulk_create: catches a trigger that refuses good rows too
    (a condition that compares the wrong columns)."""
    path = tmp_path / "lab.csv"
    path.write_text("rater,dataset,image,method,score\n"
                    "r1,lab,img_1,bicubic,2\nr1,lab,img_1,hr,5\nr2,lab,img_1,bicubic,3\nr2,lab,img_1,hr,4\n")
    result = import_ratings(path, "lab")
    assert result.ratings == 4
    rows = Rating.objects.filter(rater__study__name="lab").values_list(
        "rater__label", "stimulus__condition__name", "score", "item__session__rater__label", "item__stimulus__condition__name")
    assert sorted(rows) == [("r1", "bicubic", 2, "r1", "bicubic"), ("r1", "hr", 5, "r1", "hr"),
                            ("r2", "bicubic", 3, "r2", "bicubic"), ("r2", "hr", 4, "r2", "hr")]


@pytest.mark.django_db(transaction=True)
def test_a_concurrent_change_of_the_item_waits_for_the_rating_and_is_refused(rows):
    """PostgreSQL: the rating's check share-locks its item, so a transaction changing the item's
    stimulus meanwhile waits, then sees the committed rating and is refused. Catches the lock dropped
    (the change would commit at once, unseen by both checks). SQLite runs one writer at a time."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writing transactions; the race needs two at once")
    (a, _), (s0, s1), items = rows
    item = items["a"][0]
    outcome = {}

    def change_the_item():
        try:
            with transaction.atomic():
                SessionItem.objects.filter(pk=item.pk).update(stimulus=s1)
            outcome["result"] = "changed"
        except IntegrityError as exc:
            outcome["result"] = str(exc)
        finally:
            connections.close_all()

    with transaction.atomic():
        Rating.objects.create(item=item, rater=a, stimulus=s0, score=3)
        other = threading.Thread(target=change_the_item)
        other.start()
        other.join(timeout=1.5)
        assert other.is_alive(), f"the item changed under an uncommitted rating: {outcome}"
    other.join(timeout=30)
    assert REFUSED in outcome["result"]
    assert SessionItem.objects.get(pk=item.pk).stimulus_id == s0.pk
