"""A paired session's stored order: practice pairs first, then the judged pairs with gold pairs mixed in.

The pairs come from :func:`ratings.pairwise_design.plan_pairs` (full and balanced designs, drawn
from the study seed and the rater's index) or, for the active design, one at a time as the session
goes (:func:`next_active_item`, from the judgments so far). Practice and gold pairs are the
nearest-neighbour and the original of a calibration image, on sides drawn per pair; the expected
side is the original's. For 2afc-real the pair is a method's version and the original.
"""

from __future__ import annotations

import random

import numpy as np
from django.db.models import Count

from analysis.active_sampling import choose_pairs

from .models import Judgment, Session, SessionItem, Stimulus, Study, StudyDataset
from .pairwise_design import plan_pairs
from .study_file import REFERENCE_METHOD

__all__ = ["build_pair_items", "next_active_item"]

PRACTICE_METHOD = "nearest"


def _done(study: Study):
    return Stimulus.objects.filter(study=study, state=Stimulus.State.DONE)


def _test_stimuli(study: Study) -> dict[tuple[int, str], Stimulus]:
    rows = _done(study).filter(image__dataset__role=StudyDataset.Role.TEST).select_related("image", "condition")
    return {(s.image_id, s.condition.name): s for s in rows}


def _obvious_pairs(study: Study, rng: random.Random) -> list[tuple[Stimulus, Stimulus, str]]:
    """(left, right, expected side) of NN against the original on each calibration image made."""
    rows = _done(study).filter(image__dataset__role=StudyDataset.Role.CALIBRATION,
                               condition__name__in=[PRACTICE_METHOD, REFERENCE_METHOD]).select_related("condition")
    by_image: dict[int, dict[str, Stimulus]] = {}
    for s in rows.order_by("image_id"):
        by_image.setdefault(s.image_id, {})[s.condition.name] = s
    pairs = []
    for image_id in sorted(by_image):
        found = by_image[image_id]
        if len(found) < 2:
            continue  # a failed NN or HR version: that image gives no obvious pair
        if rng.random() < 0.5:
            pairs.append((found[PRACTICE_METHOD], found[REFERENCE_METHOD], SessionItem.Side.RIGHT))
        else:
            pairs.append((found[REFERENCE_METHOD], found[PRACTICE_METHOD], SessionItem.Side.LEFT))
    return pairs


def _rater_index(study: Study, session: Session) -> int:
    """How many sessions of the study were planned before this one (the caller holds the study lock)."""
    return Session.objects.filter(rater__study=study, items__isnull=False).exclude(pk=session.pk).distinct().count()


def build_pair_items(session: Session) -> list[SessionItem]:
    """The session's pair items in order; for the active design only the practice and gold pairs
    and the first judged pair (the rest follow one at a time)."""
    rater, study = session.rater, session.rater.study
    design = study.pairwise
    rng = random.Random(f"{study.seed}:{rater.label}:pairs")
    obvious = _obvious_pairs(study, rng)
    practice = obvious[: design.practice_pairs]
    gold = obvious[design.practice_pairs: design.practice_pairs + design.gold_pairs]
    plan = [(left, right, SessionItem.Kind.PRACTICE, side) for left, right, side in practice]
    body = []
    if design.design != "active":
        stimuli = _test_stimuli(study)
        for dataset in study.datasets.filter(role=StudyDataset.Role.TEST).order_by("position"):
            conditions = list(dataset.conditions.order_by("position").values_list("name", flat=True))
            images = list(dataset.images.order_by("name").values_list("pk", flat=True))
            for image_id, left, right in plan_pairs(design, images, conditions, seed=study.seed,
                                                    rater_index=_rater_index(study, session)):
                pair = stimuli.get((image_id, left)), stimuli.get((image_id, right))
                if None not in pair:  # a failed stimulus (run_study --accept-failures) is left out
                    body.append((pair[0], pair[1], SessionItem.Kind.PAIR, ""))
    for left, right, side in gold:
        body.insert(rng.randint(0, len(body)), (left, right, SessionItem.Kind.PAIR_GOLD, side))
    plan.extend(body)
    items = [SessionItem(session=session, position=k, stimulus=left, right_stimulus=right, kind=kind,
                         expected_side=side) for k, (left, right, kind, side) in enumerate(plan)]
    created = SessionItem.objects.bulk_create(items)
    session.calibration_items = len(practice)
    session.planned_scored_items = len(body) + (design.judgments_per_rater if design.design == "active" else 0)
    session.save(update_fields=["calibration_items", "planned_scored_items"])
    if design.design == "active":
        next_active_item(session)
    return created


def next_active_item(session: Session) -> SessionItem | None:
    """Append the most informative pair for this rater (the active design), if the rater has judged
    fewer than ``judgments_per_rater``; the caller holds the session lock (or builds the session).

    Information is counted per image over every rater's judgments so far; pairs this rater already
    judged are excluded, so no rater sees the same pair of one image twice.
    """
    study = session.rater.study
    design = study.pairwise
    asked = session.items.filter(kind=SessionItem.Kind.PAIR).count()
    if asked >= design.judgments_per_rater:
        return None
    stimuli = _test_stimuli(study)
    by_image: dict[int, list[str]] = {}
    for dataset in study.datasets.filter(role=StudyDataset.Role.TEST).order_by("position"):
        conditions = [c for c in dataset.conditions.order_by("position").values_list("name", flat=True)
                      if c != REFERENCE_METHOD or design.reference == "none"]
        for image_id in dataset.images.order_by("name").values_list("pk", flat=True):
            by_image[image_id] = [c for c in conditions if (image_id, c) in stimuli]
    names = sorted({c for cs in by_image.values() for c in cs})
    index = {c: k for k, c in enumerate(names)}
    wins = {img: np.zeros((len(names), len(names))) for img in by_image}
    # Counted by the database: one row per (image, pair, side), not per judgment - this runs in the
    # request that stores an answer, and a crowd study holds 10^5 judgments.
    rows = (Judgment.objects.filter(rater__study=study, item__kind=SessionItem.Kind.PAIR)
            .values_list("item__stimulus__image_id", "item__stimulus__condition__name",
                         "item__right_stimulus__condition__name", "side")
            .annotate(n=Count("pk")).order_by())
    for image_id, left, right, side, n in rows:
        winner, loser = (left, right) if side == SessionItem.Side.LEFT else (right, left)
        wins[image_id][index[winner], index[loser]] += n
    seen = session.items.filter(kind=SessionItem.Kind.PAIR).values_list(
        "stimulus__image_id", "stimulus__condition__name", "right_stimulus__condition__name")
    exclude = set(seen)
    for image_id, conditions in by_image.items():  # only pairs the image has both versions of
        for a in names:
            for b in names:
                if a < b and (a not in conditions or b not in conditions):
                    exclude.add((image_id, a, b))
                if design.protocol == "2afc-real" and a < b and REFERENCE_METHOD not in (a, b):
                    exclude.add((image_id, a, b))
    picked = choose_pairs(wins, names, 1, exclude=exclude)
    if not picked:
        return None
    image_id, a, b = picked[0]
    rng = random.Random(f"{study.seed}:{session.rater.label}:active:{asked}")
    left, right = (a, b) if rng.random() < 0.5 else (b, a)
    position = session.items.count()
    return SessionItem.objects.create(session=session, position=position, stimulus=stimuli[(image_id, left)],
                                      right_stimulus=stimuli[(image_id, right)], kind=SessionItem.Kind.PAIR)
