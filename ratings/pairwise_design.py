"""The paired-comparison protocols: their study-file table and which pairs each rater judges.

``protocol = "pairwise"`` shows two methods' versions of one image and asks which is better (or, with
``reference = "hr"``, which is closer to the original shown with them); ``protocol = "2afc-real"``
shows one method's version and the original and asks which is the real photograph (SR3's fool rate).
``[pairwise]`` in the study file::

    [pairwise]
    question = "Which image has the better quality?"
    reference = "none"            # or "hr": the original is shown with the pair
    design = "full"               # every pair of every image; "balanced": judgments_per_pair spread
                                  # evenly over raters and images; "active": chosen as judgments arrive
    judgments_per_rater = 0       # 0 with "full": all pairs; required for "balanced" and "active"
    judgments_per_pair = 0        # "balanced": the target per (image, pair)
    practice_pairs = 3            # obvious pairs (nearest vs the original) first, with feedback
    gold_pairs = 0                # unannounced obvious pairs among the judgments

Which pairs a rater gets is decided here once, from the study's seed and the rater's index, so a
reload or a resumed session finds the same plan.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

PROTOCOLS = ("acr", "pairwise", "2afc-real")
PAIRED_PROTOCOLS = ("pairwise", "2afc-real")
DESIGNS = ("full", "balanced", "active")
REFERENCES = ("none", "hr")
DEFAULT_QUESTIONS = {
    ("pairwise", "none"): "Which image has the better quality?",
    ("pairwise", "hr"): "Which image is closer to the original shown with them?",
    ("2afc-real", "none"): "Which of the two is the real photograph?",
}
PAIRWISE_LIMITS = {"judgments_per_rater": 20_000, "judgments_per_pair": 1_000, "practice_pairs": 20,
                   "gold_pairs": 200}
QUESTION_MAX = 200
_KEYS = ("question", "reference", "design", "judgments_per_rater", "judgments_per_pair", "practice_pairs",
         "gold_pairs")

__all__ = ["DESIGNS", "PAIRED_PROTOCOLS", "PROTOCOLS", "PairwiseDesign", "PairwiseDesignError", "plan_pairs",
           "parse_pairwise", "raters_needed"]


class PairwiseDesignError(ValueError):
    """A ``[pairwise]`` value that cannot be used: ``key`` names it (``pairwise.design``)."""

    def __init__(self, key: str, problem: str):
        self.key, self.problem = key, problem
        super().__init__(f"{key}: {problem}")


@dataclass(frozen=True)
class PairwiseDesign:
    """How a paired study shows its pairs (the parsed ``[pairwise]`` table)."""

    protocol: str = "pairwise"
    question: str = DEFAULT_QUESTIONS[("pairwise", "none")]
    reference: str = "none"
    design: str = "full"
    judgments_per_rater: int = 0
    judgments_per_pair: int = 0
    practice_pairs: int = 3
    gold_pairs: int = 0

    def to_json(self) -> dict:
        return dict(self.__dict__)


def _int(table: dict, key: str, default: int) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise PairwiseDesignError(f"pairwise.{key}", f"must be a whole number, got {value!r}")
    if value < 0 or value > PAIRWISE_LIMITS[key]:
        raise PairwiseDesignError(f"pairwise.{key}", f"must be between 0 and {PAIRWISE_LIMITS[key]}, got {value}")
    return value


def parse_pairwise(protocol: str, table: dict | None) -> PairwiseDesign:
    """Validate the protocol and its ``[pairwise]`` table (None: all defaults)."""
    if protocol not in PROTOCOLS:
        raise PairwiseDesignError("protocol", f"must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    table = dict(table or {})
    if protocol == "acr":
        if table:
            raise PairwiseDesignError("pairwise", 'belongs to protocol = "pairwise" or "2afc-real", not "acr"')
        return PairwiseDesign(protocol="acr")
    unknown = sorted(set(table) - set(_KEYS))
    if unknown:
        raise PairwiseDesignError(f"pairwise.{unknown[0]}", f"unknown key (known: {', '.join(_KEYS)})")
    reference = table.get("reference", "none")
    if reference not in REFERENCES:
        raise PairwiseDesignError("pairwise.reference", f"must be one of {', '.join(REFERENCES)}, got {reference!r}")
    if protocol == "2afc-real" and reference != "none":
        raise PairwiseDesignError("pairwise.reference", "a 2afc-real pair already holds the original")
    design = table.get("design", "full")
    if design not in DESIGNS:
        raise PairwiseDesignError("pairwise.design", f"must be one of {', '.join(DESIGNS)}, got {design!r}")
    question = table.get("question", DEFAULT_QUESTIONS[(protocol, reference)])
    if not isinstance(question, str) or not question.strip() or len(question) > QUESTION_MAX:
        raise PairwiseDesignError("pairwise.question", f"must be a non-empty text of at most {QUESTION_MAX} characters")
    per_rater = _int(table, "judgments_per_rater", 0)
    per_pair = _int(table, "judgments_per_pair", 0)
    if design in ("balanced", "active") and per_rater == 0:
        raise PairwiseDesignError("pairwise.judgments_per_rater", f'is required for design = "{design}"')
    if design == "balanced" and per_pair == 0:
        raise PairwiseDesignError("pairwise.judgments_per_pair", 'is required for design = "balanced"')
    if design != "balanced" and per_pair:
        raise PairwiseDesignError("pairwise.judgments_per_pair", 'applies to design = "balanced" only')
    return PairwiseDesign(protocol=protocol, question=question.strip(), reference=reference, design=design,
                          judgments_per_rater=per_rater, judgments_per_pair=per_pair,
                          practice_pairs=_int(table, "practice_pairs", 3), gold_pairs=_int(table, "gold_pairs", 0))


def _cells(design: PairwiseDesign, images: Sequence[Hashable], conditions: Sequence[str],
           reference: str) -> list[tuple[Hashable, str, str]]:
    """Every (image, method, method) a study can ask about: for 2afc-real each condition against the
    original; for pairwise every pair of the conditions - the original among them (it anchors the
    scale) unless it is shown as the reference beside every pair."""
    if design.protocol == "2afc-real":
        return [(img, c, reference) for img in images for c in conditions if c != reference]
    compared = [c for c in conditions if c != reference or design.reference == "none"]
    return [(img, a, b) for img in images for a, b in itertools.combinations(compared, 2)]


def raters_needed(design: PairwiseDesign, images: int, conditions: Sequence[str], reference: str = "hr") -> int:
    """Raters a balanced design needs for ``judgments_per_pair`` on every cell (0: not balanced)."""
    if design.design != "balanced":
        return 0
    cells = len(_cells(design, range(images), conditions, reference))
    return math.ceil(cells * design.judgments_per_pair / design.judgments_per_rater)


def plan_pairs(design: PairwiseDesign, images: Sequence[Hashable], conditions: Sequence[str], *, seed: int,
               rater_index: int, reference: str = "hr") -> list[tuple[Hashable, str, str]]:
    """The ordered (image, left method, right method) a rater judges, for the "full" and "balanced"
    designs ("active" pairs are chosen when shown, see :mod:`analysis.active_sampling`).

    full: every cell once, in an order and with sides drawn per rater. balanced: the study's cells in
    one seeded order, each rater taking the next ``judgments_per_rater`` of them round the list, so
    every cell is judged equally often (within one) over raters, and no rater sees a cell twice
    unless the design asks for more judgments than there are cells. Sides are random per judgment.
    """
    if design.design == "active":
        raise ValueError("active pairs are chosen when shown, not planned")
    cells = _cells(design, images, conditions, reference)
    if not cells:
        return []
    rng = random.Random(f"{seed}:pairs:{rater_index}")
    if design.design == "full":
        chosen = [cells[k] for k in rng.sample(range(len(cells)), len(cells))]
    else:
        order = list(range(len(cells)))
        random.Random(f"{seed}:cells").shuffle(order)
        start = rater_index * design.judgments_per_rater
        chosen = [cells[order[(start + k) % len(cells)]] for k in range(design.judgments_per_rater)]
        rng.shuffle(chosen)
    return [(img, a, b) if rng.random() < 0.5 else (img, b, a) for img, a, b in chosen]
