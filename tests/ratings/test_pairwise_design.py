"""The paired protocols' study-file table and the pairs planned for each rater (no database)."""

from __future__ import annotations

import collections

import pytest

from ratings.pairwise_design import PairwiseDesign, PairwiseDesignError, parse_pairwise, plan_pairs, raters_needed

CONDITIONS = ["bicubic", "srresnet-mse", "srgan-vgg54", "hr"]
IMAGES = ["baby", "bird", "butterfly", "head", "woman"]


def test_defaults_and_questions_follow_the_protocol():
    assert parse_pairwise("acr", None) == PairwiseDesign(protocol="acr")
    plain = parse_pairwise("pairwise", {})
    assert (plain.design, plain.reference, plain.question) == ("full", "none", "Which image has the better quality?")
    assert "closer to the original" in parse_pairwise("pairwise", {"reference": "hr"}).question
    assert "real photograph" in parse_pairwise("2afc-real", None).question


@pytest.mark.parametrize("protocol, table, key", [
    ("mushra", None, "protocol"),
    ("acr", {"design": "full"}, "pairwise"),
    ("pairwise", {"desing": "full"}, "pairwise.desing"),
    ("pairwise", {"design": "adaptive"}, "pairwise.design"),
    ("pairwise", {"design": "balanced", "judgments_per_rater": 50}, "pairwise.judgments_per_pair"),
    ("pairwise", {"design": "active"}, "pairwise.judgments_per_rater"),
    ("pairwise", {"judgments_per_pair": 3}, "pairwise.judgments_per_pair"),
    ("pairwise", {"judgments_per_rater": -1}, "pairwise.judgments_per_rater"),
    ("pairwise", {"judgments_per_rater": 10**9}, "pairwise.judgments_per_rater"),
    ("pairwise", {"gold_pairs": True}, "pairwise.gold_pairs"),
    ("pairwise", {"question": " "}, "pairwise.question"),
    ("2afc-real", {"reference": "hr"}, "pairwise.reference"),
])
def test_bad_values_name_their_key(protocol, table, key):
    """Catches a misspelt key dropped silently, a bool taken for a number, an unbounded count."""
    with pytest.raises(PairwiseDesignError) as caught:
        parse_pairwise(protocol, table)
    assert caught.value.key == key


def test_full_design_gives_each_rater_every_pair_of_every_image_once():
    """And the same plan again for the same rater (a reload resumes), another order for another.
    Catches sides that are always (a, b) in list order, which would confound method and side."""
    design = parse_pairwise("pairwise", {})
    plan = plan_pairs(design, IMAGES, CONDITIONS, seed=3, rater_index=0)
    cells = collections.Counter((img, *sorted((a, b))) for img, a, b in plan)
    assert len(plan) == 5 * 6 and set(cells.values()) == {1}  # 4 conditions, the original among them
    shown_with = plan_pairs(parse_pairwise("pairwise", {"reference": "hr"}), IMAGES, CONDITIONS, seed=3, rater_index=0)
    assert len(shown_with) == 5 * 3 and all("hr" not in (a, b) for _, a, b in shown_with)  # hr is the reference
    assert plan == plan_pairs(design, IMAGES, CONDITIONS, seed=3, rater_index=0)
    assert plan != plan_pairs(design, IMAGES, CONDITIONS, seed=3, rater_index=1)
    lefts = collections.Counter(a for r in range(40) for _, a, _ in plan_pairs(design, IMAGES, CONDITIONS, seed=3,
                                                                               rater_index=r))
    assert all(abs(n - 300) < 60 for n in lefts.values())  # 1200 judgments, 4 methods: 300 each on the left


def test_balanced_design_spreads_the_target_evenly_over_raters():
    """raters_needed raters give every (image, pair) judgments_per_pair judgments within one, and no
    rater sees a cell twice. Catches every rater starting at the same cell."""
    design = parse_pairwise("pairwise", {"design": "balanced", "judgments_per_rater": 7, "judgments_per_pair": 4})
    needed = raters_needed(design, len(IMAGES), CONDITIONS)
    assert needed == 18  # 30 cells x 4 / 7 per rater, rounded up
    counts = collections.Counter()
    for r in range(needed):
        plan = plan_pairs(design, IMAGES, CONDITIONS, seed=5, rater_index=r)
        own = [(img, *sorted((a, b))) for img, a, b in plan]
        assert len(own) == 7 and len(set(own)) == 7
        counts.update(own)
    assert len(counts) == 30 and max(counts.values()) - min(counts.values()) <= 1 and min(counts.values()) >= 4


def test_2afc_real_pairs_every_condition_with_the_original():
    design = parse_pairwise("2afc-real", None)
    plan = plan_pairs(design, IMAGES, CONDITIONS, seed=1, rater_index=0)
    assert len(plan) == 5 * 3 and all("hr" in (a, b) for _, a, b in plan)
    assert {a if b == "hr" else b for _, a, b in plan} == {"bicubic", "srresnet-mse", "srgan-vgg54"}
