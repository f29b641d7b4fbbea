"""Proposed payment decisions for crowd workers, with the reasons in words.

The researcher decides; this proposes, from what the study recorded, following the platforms' own
rules: both Prolific and MTurk accept rejection for failed attention checks and for not doing the
task, and discourage rejecting for disagreement alone. So:

- a worker who did not finish (left, timed out, expired) gets no decision: the platform treats the
  submission as returned or timed out;
- a worker screened out (by the qualification or the attention checks) is ``screened_out``, with
  the session's end reason (Prolific pays a screen-out rate; on MTurk approve, or post a
  qualification HIT instead);
- a finished worker who missed more gold items than allowed (the same rule as the analysis, one
  miss always allowed) or answered implausibly fast is ``reject``, with the numbers;
- any other finished worker is ``approve``; one flagged by the statistical screening is approved
  with the flag in the reasons (their data stay out of the results), never rejected for it;
- ``bonus``: the configured amount for approved workers with no gold miss.

A worker table may carry ``end_reason`` (why a session expired or was screened out, in words); it
goes into the reasons. The columns are documented in ``docs/crowd.md``; ``mturk_columns`` adds
``Approve``/``Reject`` in the form MTurk's batch-results upload reads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis._frames import gold_misses_allowed, require_columns

WORKER_COLUMNS = ("worker_id", "state", "time_spent_s", "items_rated", "items_planned", "gold_n", "gold_misses",
                  "median_response_ms", "flagged", "flag_reasons")
DECISION_COLUMNS = [*WORKER_COLUMNS, "decision", "bonus", "reasons"]

__all__ = ["DECISION_COLUMNS", "PaymentRules", "WORKER_COLUMNS", "mturk_columns", "prolific_lists",
           "propose_decisions"]


@dataclass(frozen=True)
class PaymentRules:
    """min_median_response_ms : a finished worker whose median response is faster than this did not
    look at the images (None: no rule). gold_misses_allowed : gold items a worker may miss, as
    ``max(1, floor(share * n))`` with ``share = 1 - min_gold_correct``. bonus : amount proposed for
    approved workers with no gold miss (0: none)."""

    min_median_response_ms: float | None = 700.0
    min_gold_correct: float = 0.8
    bonus: float = 0.0

    def gold_misses_allowed(self, n_gold: int) -> int:
        return int(gold_misses_allowed(n_gold, self.min_gold_correct))


def propose_decisions(workers: pd.DataFrame, rules: PaymentRules = PaymentRules()) -> pd.DataFrame:
    """One row per worker: their record, the proposed ``decision`` (approve, reject, screened_out or
    empty), the ``bonus`` and the ``reasons`` in words."""
    require_columns(workers, WORKER_COLUMNS, "workers")
    decisions, bonuses, reasons = [], [], []
    ends = workers["end_reason"].fillna("").astype(str) if "end_reason" in workers else pd.Series("", workers.index)
    for row, end in zip(workers.itertuples(index=False), ends):
        words = []
        if row.state == "screened_out":
            decisions.append("screened_out")
            bonuses.append(0.0)
            reasons.append(f"screened out: {end}" if end else "did not pass the qualification")
            continue
        if row.state != "complete":
            decisions.append("")
            bonuses.append(0.0)
            reasons.append(f"did not finish ({row.state}: {int(row.items_rated)} of {int(row.items_planned)} items"
                           f"{'; ' + end if end else ''})")
            continue
        allowed = rules.gold_misses_allowed(int(row.gold_n)) if row.gold_n else None
        reject = []
        if allowed is not None and row.gold_misses > allowed:
            reject.append(f"failed attention checks: missed {int(row.gold_misses)} of {int(row.gold_n)} obvious "
                          f"items (at most {allowed} allowed)")
        fast = rules.min_median_response_ms
        if fast is not None and pd.notna(row.median_response_ms) and row.median_response_ms < fast:
            reject.append(f"answered too fast to look at the images (median {row.median_response_ms:.0f} ms per "
                          f"item, below {fast:.0f} ms)")
        if reject:
            decisions.append("reject")
            bonuses.append(0.0)
            reasons.append("; ".join(reject))
            continue
        words.append(f"finished {int(row.items_rated)} items in {row.time_spent_s / 60:.0f} min")
        if row.flagged:
            words.append(f"data excluded by screening ({row.flag_reasons}); approved, not rejected for it")
        bonus = rules.bonus if rules.bonus and row.gold_n and row.gold_misses == 0 else 0.0
        if bonus:
            words.append(f"bonus: every one of {int(row.gold_n)} obvious items right")
        decisions.append("approve")
        bonuses.append(float(bonus))
        reasons.append("; ".join(words))
    out = workers[list(WORKER_COLUMNS)].copy()
    out["decision"] = decisions
    out["bonus"] = bonuses
    out["reasons"] = reasons
    return out[DECISION_COLUMNS]


def mturk_columns(decisions: pd.DataFrame) -> pd.DataFrame:
    """``Approve`` ("x") and ``Reject`` (the reason) as MTurk's batch-results upload reads them;
    undecided rows stay empty in both."""
    out = decisions.copy()
    out["Approve"] = np.where(out["decision"].isin(["approve", "screened_out"]), "x", "")
    out["Reject"] = np.where(out["decision"] == "reject", out["reasons"], "")
    return out


def prolific_lists(decisions: pd.DataFrame, id_column: str = "worker_id") -> tuple[list[str], list[str]]:
    """What Prolific's bulk tools take: the participant ids to approve (bulk approve: one per line),
    and one ``id,amount`` line per bonus (bulk bonus payments; the amount in the study's currency,
    two decimals). Screened-out and undecided workers are in neither; rejections are made one by
    one on Prolific with the reasons of the table."""
    approve = decisions.loc[decisions["decision"] == "approve", id_column].astype(str).tolist()
    paid = decisions.loc[(decisions["decision"] == "approve") & (decisions["bonus"] > 0)]
    bonus = [f"{pid},{amount:.2f}" for pid, amount in zip(paid[id_column].astype(str), paid["bonus"])]
    return approve, bonus
