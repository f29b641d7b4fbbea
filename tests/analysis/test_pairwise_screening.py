"""Rater screening of paired studies on planted raters: attentive, inverted, cyclic, gold-missing."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from analysis.pairwise_screening import PairwiseFlagRules, circular_triads, pairwise_rater_report
from analysis.pairwise_simulation import PairedPopulation, simulate_judgments

COLUMNS = ["rater_id", "dataset", "image", "method_a", "method_b", "choice"]


def test_circular_triads_counts_cycles_not_transitive_orders():
    """A > B > C > A is one circular triad; A > B > C with A > C is none; a pair split evenly leaves
    its triads incomplete. Catches the reverse cycle missed, or every triad counted circular."""
    cycle = pd.DataFrame([("r", "d", "i", "A", "B", "A"), ("r", "d", "i", "B", "C", "B"),
                          ("r", "d", "i", "C", "A", "C")], columns=COLUMNS)
    reverse = cycle.assign(choice=["B", "C", "A"])
    ordered = cycle.assign(choice=["A", "B", "A"])
    assert circular_triads(cycle) == (1, 1)
    assert circular_triads(reverse) == (1, 1)
    assert circular_triads(ordered) == (1, 0)
    split = pd.concat([ordered, ordered.iloc[[0]].assign(choice="B")])
    assert circular_triads(split) == (0, 0)


def _study_with(planted: dict[str, str], seed: int = 0) -> pd.DataFrame:
    """Twelve attentive raters on clearly different methods, plus the planted ones: 'inverted'
    always picks the worse method, 'cyclic' picks round a cycle of the four methods."""
    population = PairedPopulation(quality=(0.0, 1.5, 3.0, 4.5), image_sd=0.2, rater_sd=0.2)
    judgments, truth = simulate_judgments(12, 6, population=population, seed=seed)
    rank = {m: k for k, m in enumerate(truth.methods)}
    rows = []
    for rater, behaviour in planted.items():
        for image in sorted(judgments["image"].unique()):
            for a, b in itertools.combinations(truth.methods, 2):
                if behaviour == "inverted":
                    choice = a if rank[a] < rank[b] else b
                else:  # cyclic: m0 > m1 > m2 > m3 > m0, and the other pairs by index
                    choice = a if (rank[b] - rank[a]) % 4 == 1 else b
                    if {rank[a], rank[b]} == {0, 3}:
                        choice = truth.methods[3]
                rows.append((rater, "Set5", image, a, b, choice))
    return pd.concat([judgments, pd.DataFrame(rows, columns=COLUMNS)], ignore_index=True)


def test_inverted_and_cyclic_raters_are_flagged_attentive_ones_are_not():
    """Catches agreement measured including the rater's own judgments (an inverted rater then agrees
    with themselves), and triads never checked."""
    report = pairwise_rater_report(_study_with({"inverted": "inverted", "cyclic": "cyclic"})).set_index("rater_id")
    assert report.loc["inverted", "flagged"] and "agrees with the others" in report.loc["inverted", "flag_reasons"]
    assert report.loc["inverted", "consensus_agreement"] < 0.1
    assert report.loc["cyclic", "circular_share"] > 0.25 and "triads circular" in report.loc["cyclic", "flag_reasons"]
    attentive = report.drop(index=["inverted", "cyclic"])
    assert not attentive["flagged"].any()
    assert attentive["consensus_agreement"].min() > 0.7


def test_gold_pairs_allow_one_miss():
    """Five gold pairs: one miss passes, two are flagged (the rule stated by describe())."""
    base = _study_with({})
    gold = []
    for rater, misses in (("r000", 1), ("r001", 2)):
        for k in range(5):
            wrong = k < misses
            gold.append((rater, "Set5", f"g{k}", "nearest", "hr", "nearest" if wrong else "hr", "gold", "hr"))
    frame = pd.concat([base.assign(kind="test", expected_choice=None),
                       pd.DataFrame(gold, columns=[*COLUMNS, "kind", "expected_choice"])], ignore_index=True)
    report = pairwise_rater_report(frame).set_index("rater_id")
    assert not report.loc["r000", "flagged"] and report.loc["r000", "gold_misses"] == 1
    assert report.loc["r001", "flagged"] and "missed 2 of 5 gold pairs" in report.loc["r001", "flag_reasons"]
    assert any("one miss always allowed" in line for line in PairwiseFlagRules().describe())
    assert np.isfinite(report["consensus_agreement"]).all()
