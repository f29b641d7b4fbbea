"""Rater screening for paired comparisons: transitivity, agreement with the others, gold pairs.

Three signals per rater, each with a rule in :class:`PairwiseFlagRules` (the one home of the
thresholds and of the words the report uses for them):

- circular triads: on one image, a rater who judged all three pairs of three methods and chose
  A > B > C > A (Kendall & Babington Smith 1940). A rater choosing at random makes 1 of 4 triads
  circular; an attentive rater few, except among methods that look alike.
- agreement with the consensus: for each judgment, the choice the *other* raters made most often
  on the same image and pair (leave-one-out; pairs the others split evenly do not count). A rater
  agreeing less often than chance (0.5) answers against what everybody else sees.
- gold pairs: obvious pairs (nearest-neighbour against the original) with a known answer, in the
  ``expected_choice`` column of ``kind == "gold"`` rows. One miss is always allowed, as for ratings.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis._frames import gold_misses_allowed, require_columns
from analysis.pairwise import JUDGMENT_COLUMNS, test_judgments

SCREENING_COLUMNS = [
    "rater_id", "judgments", "triads", "circular_triads", "circular_share", "consensus_n", "consensus_agreement",
    "gold_n", "gold_misses", "flagged", "flag_reasons",
]

__all__ = ["SCREENING_COLUMNS", "PairwiseFlagRules", "circular_triads", "pairwise_rater_report"]


@dataclass(frozen=True)
class PairwiseFlagRules:
    """Thresholds that flag a rater of a paired study (None disables a rule; NaN never flags).

    max_circular_share : flag above this share of circular triads (0.25: a random chooser's mean).
    min_consensus_agreement : flag below this agreement with the others' majority (0.5: chance).
    min_judgments : the consensus and triad rules apply only to raters with at least this many.
    min_gold_correct : gold pairs a rater must get right, allowing always one miss:
        ``max(1, floor((1 - share) * n))`` misses are allowed.
    """

    max_circular_share: float | None = 0.25
    min_consensus_agreement: float | None = 0.5
    min_judgments: int = 10
    min_gold_correct: float | None = 0.8

    def gold_misses_allowed(self, n_gold) -> np.ndarray:
        return gold_misses_allowed(n_gold, self.min_gold_correct)

    def describe(self) -> list[str]:
        """The rules in words, as the report prints them."""
        out = []
        if self.max_circular_share is not None:
            out.append(f"more than {self.max_circular_share:.0%} of their complete triads on an image circular "
                       f"(A over B over C over A; a random chooser averages 25%), with at least "
                       f"{self.min_judgments} judgments")
        if self.min_consensus_agreement is not None:
            out.append(f"agreeing with the other raters' majority choice in fewer than "
                       f"{self.min_consensus_agreement:.0%} of their judgments, with at least {self.min_judgments}")
        if self.min_gold_correct is not None:
            out.append(f"missing more gold pairs than {1 - self.min_gold_correct:.0%} of them, one miss always allowed")
        return out


def circular_triads(rows: pd.DataFrame) -> tuple[int, int]:
    """(complete triads, circular triads) of one rater on one image: triples of methods whose three
    pairs the rater judged, and those judged in a cycle. A pair judged more than once counts by its
    majority; a pair split evenly makes its triads incomplete."""
    winner = rows["choice"]
    loser = rows["method_b"].where(rows["choice"] == rows["method_a"], rows["method_a"])
    tally: dict[tuple, int] = {}
    for w, lo in zip(winner, loser, strict=True):
        a, b = sorted((w, lo), key=str)
        tally[(a, b)] = tally.get((a, b), 0) + (1 if w == a else -1)
    beats = {}
    for (a, b), lead in tally.items():
        if lead:
            beats[(a, b)] = lead > 0
    methods = sorted({m for pair in beats for m in pair}, key=str)
    complete = circular = 0
    for a, b, c in itertools.combinations(methods, 3):
        if (a, b) in beats and (b, c) in beats and (a, c) in beats:
            complete += 1
            # a cycle iff the three wins point the same way round: a>b, b>c, c>a or the reverse
            circular += beats[(a, b)] == beats[(b, c)] != beats[(a, c)]
    return complete, circular


def _consensus(rows: pd.DataFrame) -> pd.DataFrame:
    """Per rater: judgments whose image and pair the others decided by a strict majority, and how
    many of them the rater chose the same way (leave-one-out)."""
    a = rows["method_a"].astype(str)
    b = rows["method_b"].astype(str)
    first = np.where(a <= b, a, b)
    key = pd.DataFrame({"rater_id": rows["rater_id"].to_numpy(), "dataset": rows["dataset"].to_numpy(),
                        "image": rows["image"].to_numpy(), "first": first,
                        "second": np.where(a <= b, b, a),
                        "vote": np.where(rows["choice"].astype(str).to_numpy() == first, 1, -1)})
    cell = ["dataset", "image", "first", "second"]
    total = key.groupby(cell)["vote"].transform("sum")
    own = key.groupby(cell + ["rater_id"])["vote"].transform("sum")
    others = total - own
    counted = others != 0
    agrees = np.sign(others) == key["vote"]
    frame = pd.DataFrame({"rater_id": key["rater_id"], "counted": counted, "agrees": agrees & counted})
    return frame.groupby("rater_id", sort=False).agg(consensus_n=("counted", "sum"), agreed=("agrees", "sum"))


def pairwise_rater_report(judgments: pd.DataFrame, rules: PairwiseFlagRules = PairwiseFlagRules()) -> pd.DataFrame:
    """One row per rater: the three signals, whether the rater is flagged and why, in words."""
    require_columns(judgments, JUDGMENT_COLUMNS, "judgments")
    test = test_judgments(judgments)
    raters = pd.Index(pd.unique(judgments["rater_id"]), name="rater_id")
    out = pd.DataFrame(index=raters)
    out["judgments"] = test.groupby("rater_id").size().reindex(raters, fill_value=0)
    triads = {r: [0, 0] for r in raters}
    for (rater, _, _), part in test.groupby(["rater_id", "dataset", "image"], sort=False):
        complete, circular = circular_triads(part)
        triads[rater][0] += complete
        triads[rater][1] += circular
    out["triads"] = [triads[r][0] for r in raters]
    out["circular_triads"] = [triads[r][1] for r in raters]
    with np.errstate(invalid="ignore", divide="ignore"):
        out["circular_share"] = np.where(out["triads"] > 0, out["circular_triads"] / out["triads"], np.nan)
    consensus = _consensus(test).reindex(raters)
    out["consensus_n"] = consensus["consensus_n"].fillna(0).astype(int)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["consensus_agreement"] = np.where(out["consensus_n"] > 0, consensus["agreed"] / out["consensus_n"], np.nan)
    gold_n = pd.Series(0, index=raters)
    gold_misses = pd.Series(0, index=raters)
    if "kind" in judgments.columns:
        gold = judgments[(judgments["kind"] == "gold") & judgments["choice"].notna()]
        if not gold.empty:
            require_columns(gold, ["expected_choice"], "gold judgments")
            missed = gold["choice"] != gold["expected_choice"]
            gold_n = gold.groupby("rater_id").size().reindex(raters, fill_value=0)
            gold_misses = missed.groupby(gold["rater_id"]).sum().reindex(raters, fill_value=0).astype(int)
    out["gold_n"] = gold_n.to_numpy()
    out["gold_misses"] = gold_misses.to_numpy()
    reasons = [[] for _ in raters]
    enough = out["judgments"] >= rules.min_judgments
    for k, rater in enumerate(raters):
        row = out.loc[rater]
        if rules.max_circular_share is not None and enough[rater] and row["circular_share"] > rules.max_circular_share:
            reasons[k].append(f"{row['circular_share']:.0%} of {int(row['triads'])} triads circular")
        if (rules.min_consensus_agreement is not None and enough[rater]
                and row["consensus_agreement"] < rules.min_consensus_agreement):
            reasons[k].append(f"agrees with the others in {row['consensus_agreement']:.0%} of "
                              f"{int(row['consensus_n'])} judgments")
        if rules.min_gold_correct is not None and row["gold_n"] > 0:
            allowed = int(rules.gold_misses_allowed(row["gold_n"]))
            if row["gold_misses"] > allowed:
                reasons[k].append(f"missed {int(row['gold_misses'])} of {int(row['gold_n'])} gold pairs")
    out["flagged"] = [bool(r) for r in reasons]
    out["flag_reasons"] = ["; ".join(r) for r in reasons]
    return out.reset_index()[SCREENING_COLUMNS]
