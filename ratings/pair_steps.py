"""The paired-comparison steps of a session: a pair shown, a side chosen, stored once as a Judgment.

Registered in :data:`ratings.sessions.STEP_KINDS` (the flow's extension point) under the pair item
kinds: judged pairs and gold pairs look the same to the rater; practice pairs come first and the
answer to each is told right after it (P.808-style training), so raters learn what the question asks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .models import Judgment, Session, SessionItem, Stimulus
from .sessions import STEP_KINDS, RatingRefused, Step, StepKind, image_url, item_tokens
from .study_file import REFERENCE_METHOD

__all__ = ["PairAnswer", "PairStep", "PracticePairStep", "SIDES"]

SIDES = (SessionItem.Side.LEFT, SessionItem.Side.RIGHT)
LAYOUTS = ("", "side", "toggle")
TOGGLES_MAX = 100_000
CHOOSE_A_SIDE = "Please choose the left or the right image."


@dataclass(frozen=True)
class PairAnswer:
    """A side chosen, with how the pair was viewed; two answers are the same answer when the side is
    (a replay with another toggle count is still a replay)."""

    side: str
    layout: str = field(default="", compare=False)
    toggles: int = field(default=0, compare=False)


def _reference(item: SessionItem) -> Stimulus | None:
    """The original of the pair's image, when the study shows it with the pair."""
    study = item.session.rater.study
    if study.pairwise.reference != REFERENCE_METHOD or item.kind != SessionItem.Kind.PAIR:
        return None  # practice and gold pairs hold the original already
    return Stimulus.objects.filter(image_id=item.stimulus.image_id, condition__name=REFERENCE_METHOD).first()


class PairStep(StepKind):
    """Two versions of one image, left and right; the rater chooses one."""

    page = "ratings:pair"
    state = Session.State.RATING
    answer_relation = "judgment"

    def images(self, item: SessionItem) -> list[str]:
        shown = [item.stimulus.public_id, item.right_stimulus.public_id]
        reference = _reference(item)
        return shown + ([reference.public_id] if reference else [])

    def payload(self, step: Step) -> dict[str, Any]:
        token = step.session.rater.token
        item = step.item
        images = {"left": image_url(token, item.stimulus.public_id),
                  "right": image_url(token, item.right_stimulus.public_id)}
        reference = _reference(item)
        if reference is not None:
            images["reference"] = image_url(token, reference.public_id)
        return {"item": item_tokens.make_token(item), "images": images, "next_images": step.following_images(),
                "question": step.session.rater.study.pairwise.question, "practice": False}

    def check_answer(self, answer) -> None:
        if not isinstance(answer, PairAnswer) or answer.side not in SIDES:
            raise RatingRefused(CHOOSE_A_SIDE, 400)
        if answer.layout not in LAYOUTS or not 0 <= answer.toggles <= TOGGLES_MAX:
            raise RatingRefused("This answer form is damaged; please reload the page.", 400)

    def stored_answer(self, item: SessionItem):
        try:
            judgment = item.judgment
        except Judgment.DoesNotExist:
            return None
        return PairAnswer(judgment.side, judgment.layout, judgment.toggles)

    def store(self, item: SessionItem, answer: PairAnswer, response_ms: int | None) -> None:
        Judgment.objects.create(item=item, rater=item.session.rater, side=answer.side, response_ms=response_ms,
                                layout=answer.layout, toggles=answer.toggles)


class PracticePairStep(PairStep):
    """An obvious pair (nearest-neighbour against the original) whose answer is told after it."""

    state = Session.State.CALIBRATION
    warm_up = True

    def payload(self, step: Step) -> dict[str, Any]:
        return {**super().payload(step), "practice": True}

    def feedback(self, item: SessionItem, answer: PairAnswer) -> str:
        """What the rater is told after answering a practice pair."""
        better = "left" if item.expected_side == SessionItem.Side.LEFT else "right"
        if answer.side == item.expected_side:
            return f"Right: the {better} image is the original photograph."
        return f"Not quite: the {better} image is the original photograph; the other one is a rough upscaling."


_PAIR = PairStep()
STEP_KINDS.update({
    SessionItem.Kind.PAIR: _PAIR,
    SessionItem.Kind.PAIR_GOLD: _PAIR,
    SessionItem.Kind.PRACTICE: PracticePairStep(),
})
