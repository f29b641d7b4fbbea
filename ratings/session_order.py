"""A session's stored order: calibration first, then training (when the study qualifies its workers),
then the test items with repeats and gold mixed in.

Drawn once, from the study seed and the rater's label, and stored as ``SessionItem`` rows, so a
reload or another device resumes at the same place. What happens along that order (consent, answers,
breaks, the end) is :mod:`ratings.sessions`.
"""

from __future__ import annotations

import random

from django.db.models import BigIntegerField, ExpressionWrapper, F

from .balance import stimuli_with_counts
from .models import Rater, Session, SessionItem, Stimulus, Study, StudyDataset

__all__ = ["build_items"]


def _rng(study: Study, rater: Rater, purpose: str) -> random.Random:
    return random.Random(f"{study.seed}:{rater.label}:{purpose}")


# The rater's tie-break among equally counted stimuli, (pk * a + b) mod p: a permutation of the pks
# drawn per rater (p prime, a != 0), computed in SQL within 64 bits (pk < 2^31, a < 2^31).
_TIEBREAK_PRIME = 2_147_483_647


def _test_stimuli(study: Study, rater: Rater) -> list[Stimulus]:
    done = Stimulus.objects.filter(study=study, state=Stimulus.State.DONE, image__dataset__role=StudyDataset.Role.TEST)
    if study.assignment == Study.Assignment.ALL:
        return list(done.order_by("pk"))
    # Balanced: the stimuli still short of ratings_per_stimulus (ratings.balance, the one counting rule
    # of top-up), least counted first, ties broken by the rater's own draw; the caller holds the study
    # lock while counting. Ranked and cut in SQL: a crowd study has 10^5 stimuli, and loading them all
    # to sort in Python took 19 s a consent at 10^6 ratings, under the lock.
    rng = _rng(study, rater, "balance")
    draw = ExpressionWrapper((F("pk") * rng.randrange(1, _TIEBREAK_PRIME) + rng.randrange(_TIEBREAK_PRIME))
                             % _TIEBREAK_PRIME, output_field=BigIntegerField())
    ranked = stimuli_with_counts(study).annotate(draw=draw).order_by("n", "draw", "pk")
    return list(ranked.select_related("image__dataset", "condition")[: study.items_per_rater])


def _calibration_images(study: Study):
    """The calibration dataset's images: (calibration, gold, training), in this order of the dataset
    (``StudyConfig.calibration_count`` makes the NN and HR stimuli of all three)."""
    dataset = study.datasets.filter(role=StudyDataset.Role.CALIBRATION).first()
    if dataset is None:
        return [], [], []
    images = list(dataset.images.order_by("pk"))
    calibration, rest = images[: study.calibration_images], images[study.calibration_images:]
    return calibration, rest[: study.gold_items], rest[study.gold_items:]


def _training(study: Study, rater: Rater, images, made) -> list[tuple[Stimulus, str, int]]:
    """P.808's training items: ``training_items`` images after the calibration and gold ones,
    alternating nearest-neighbour (expected 1) and the original (expected 5), in an order drawn
    from the rater's own generator (so the answers cannot be learnt from another worker)."""
    qualification = study.qualification
    count = qualification.training_items if qualification else 0
    items = []
    for k, image in enumerate(images[:count]):
        method, expected = ("nearest", 1) if k % 2 == 0 else ("hr", 5)
        stimulus = made(image, method)
        if stimulus is not None:  # a failed stimulus is left out, as a gold item's is
            items.append((stimulus, SessionItem.Kind.TRAINING, expected))
    _rng(study, rater, "training").shuffle(items)
    return items


def build_items(session: Session) -> list[SessionItem]:
    """The session's items in order: calibration, training, then test items with repeats and gold
    mixed in.

    Only made (DONE) stimuli are shown: a study opened with ``run_study --accept-failures`` has
    failed ones, which are left out (a calibration pair whose NN or HR version failed, and a gold
    item whose stimulus failed, are skipped) rather than breaking every rater's session.
    """
    rater, study = session.rater, session.rater.study

    def made(image, method: str) -> Stimulus | None:
        return Stimulus.objects.filter(image=image, condition__name=method, state=Stimulus.State.DONE).first()

    calibration, gold_images, training_images = _calibration_images(study)
    plan: list[tuple[Stimulus, str, int | None]] = []
    for image in calibration:
        pair = made(image, "nearest"), made(image, "hr")
        if None in pair:
            continue  # the told scores teach the scale only as a matched NN/HR pair
        plan.append((pair[0], SessionItem.Kind.CALIBRATION, 1))
        plan.append((pair[1], SessionItem.Kind.CALIBRATION, 5))
    plan.extend(_training(study, rater, training_images, made))
    n_warm_up = len(plan)

    tests = _test_stimuli(study, rater)
    if not tests and study.assignment == Study.Assignment.BALANCED:
        # nothing short now (the rest waits in live sessions): no session of warm-up items alone, which
        # would complete and count; start_session refuses ("nothing left to rate", 410)
        return []
    rng = _rng(study, rater, "order")
    rng.shuffle(tests)
    body: list[tuple[Stimulus, str, int | None]] = [(s, SessionItem.Kind.TEST, None) for s in tests]
    if study.repeat_images:
        repeated = [s for s in tests if s.image.dataset.name == study.repeat_dataset and s.condition.name == study.repeat_method]
        repeated = sorted(repeated, key=lambda s: s.image.name)[: study.repeat_images]
        for stimulus in repeated:
            first = next(i for i, entry in enumerate(body) if entry[0].pk == stimulus.pk)
            # Anywhere at least one item away from the other showing; the earlier showing is the
            # test item and the later one the repeat.
            slots = [p for p in range(len(body) + 1) if p <= first - 1 or p >= first + 2]
            at = rng.choice(slots or [len(body)])  # a one-item session cannot separate them
            body.insert(at, (stimulus, SessionItem.Kind.TEST, None))
            shown = [i for i, entry in enumerate(body) if entry[0].pk == stimulus.pk]
            body[shown[1]] = (stimulus, SessionItem.Kind.REPEAT, None)
    for k, image in enumerate(gold_images):
        method, expected = ("nearest", 1) if k % 2 == 0 else ("hr", 5)
        gold = made(image, method)
        at = rng.randint(0, len(body))  # drawn even when skipped: the other items keep their places
        if gold is not None:
            body.insert(at, (gold, SessionItem.Kind.GOLD, expected))
    plan.extend(body)
    items = [SessionItem(session=session, position=i, stimulus=s, kind=kind, expected_score=expected)
             for i, (s, kind, expected) in enumerate(plan)]
    created = SessionItem.objects.bulk_create(items)
    # Warm-up items (calibration, training) come first by construction, so these two counts give every
    # progress figure.
    session.calibration_items = n_warm_up
    session.planned_scored_items = len(body)
    session.save(update_fields=["calibration_items", "planned_scored_items"])
    return created
