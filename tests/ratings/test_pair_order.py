"""Paired sessions' stored order: practice first, the planned pairs, gold pairs mixed in; active pairs."""

from __future__ import annotations

import collections

import pytest

from ratings import studies
from ratings.models import Judgment, Session, SessionItem, Study
from ratings.pair_order import build_pair_items, next_active_item

from .conftest import ready_study

pytestmark = pytest.mark.django_db

PAIRED = """name = "pairs"
seed = 11
datasets = ["Set5"]
methods = ["nearest", "bicubic", "hr"]
protocol = "pairwise"

[pairwise]
practice_pairs = 2
gold_pairs = 1
"""



def _session(study: Study) -> Session:
    rater = studies.create_invitations(study, 1)[0]
    return Session.objects.get_or_create(rater=rater)[0]


def test_full_design_order(datasets_root, media_root):
    """Two practice pairs first (NN against the original, expected side the original's), then every
    pair of the 3 conditions on the 5 images once, with the gold pair among them. Catches practice
    pairs placed among the judged ones, and an expected side that is not where the original is."""
    study = ready_study(PAIRED, datasets_root)
    session = _session(study)
    items = build_pair_items(session)
    kinds = [i.kind for i in items]
    assert kinds[:2] == ["practice", "practice"] and kinds.count("pair_gold") == 1 and kinds.count("pair") == 15
    assert (session.calibration_items, session.planned_scored_items) == (2, 16)
    for item in items:
        if item.kind != "pair":
            original = item.stimulus if item.expected_side == "left" else item.right_stimulus
            assert original.condition.name == "hr"
            assert {item.stimulus.condition.name, item.right_stimulus.condition.name} == {"nearest", "hr"}
            assert item.stimulus.image.dataset.role == "calibration"
        else:
            assert item.stimulus.image_id == item.right_stimulus.image_id
    cells = collections.Counter((i.stimulus.image_id, *sorted((i.stimulus.condition.name, i.right_stimulus.condition.name)))
                                for i in items if i.kind == "pair")
    assert set(cells.values()) == {1} and len(cells) == 15


def test_active_design_adds_one_informative_pair_at_a_time(datasets_root, media_root):
    """The active design plans only the practice pairs and one judged pair; each next pair is new to
    this rater, and the rater is asked exactly judgments_per_rater. Catches a design that repeats a
    rater's pair or asks past judgments_per_rater."""
    text = PAIRED.replace("gold_pairs = 1", 'gold_pairs = 0\ndesign = "active"\njudgments_per_rater = 4')
    study = ready_study(text, datasets_root)
    session = _session(study)
    build_pair_items(session)
    assert session.items.filter(kind="pair").count() == 1
    seen = set()
    while True:
        item = session.items.filter(kind="pair").order_by("-position").first()
        key = (item.stimulus.image_id, *sorted((item.stimulus.condition.name, item.right_stimulus.condition.name)))
        assert key not in seen
        seen.add(key)
        # the rater prefers the original, then bicubic: a consistent judge
        rank = {"hr": 2, "bicubic": 1, "nearest": 0}
        side = "left" if rank[item.stimulus.condition.name] > rank[item.right_stimulus.condition.name] else "right"
        Judgment.objects.create(item=item, rater=session.rater, side=side)
        if next_active_item(session) is None:
            break
    assert len(seen) == 4 and session.planned_scored_items == 4
    assert session.items.filter(kind=SessionItem.Kind.PAIR).count() == 4
