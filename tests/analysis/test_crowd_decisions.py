"""Proposed payment decisions: each rule on a worker built to meet it."""

from __future__ import annotations

import pandas as pd

from analysis.crowd_decisions import PaymentRules, mturk_columns, propose_decisions


def _worker(**kw):
    row = {"worker_id": "prolific:a", "state": "complete", "time_spent_s": 1800, "items_rated": 100,
           "items_planned": 100, "gold_n": 5, "gold_misses": 0, "median_response_ms": 2500.0, "flagged": False,
           "flag_reasons": ""}
    row.update(kw)
    return row


def test_each_rule_gives_its_decision_and_says_why():
    """Catches rejecting for a statistical flag (platforms do not accept it), rejecting one gold slip,
    paying a bonus to a worker with a miss, and deciding for an unfinished worker."""
    workers = pd.DataFrame([
        _worker(worker_id="good"),
        _worker(worker_id="one-slip", gold_misses=1),
        _worker(worker_id="careless", gold_misses=2),
        _worker(worker_id="fast", median_response_ms=300.0),
        _worker(worker_id="flagged", flagged=True, flag_reasons="low correlation with the others"),
        _worker(worker_id="left", state="expired", items_rated=40),
        _worker(worker_id="unqualified", state="screened_out", items_rated=0),
    ])
    out = propose_decisions(workers, PaymentRules(bonus=0.5)).set_index("worker_id")
    assert out.loc["good", "decision"] == "approve" and out.loc["good", "bonus"] == 0.5
    assert out.loc["one-slip", "decision"] == "approve" and out.loc["one-slip", "bonus"] == 0.0
    assert out.loc["careless", "decision"] == "reject"
    assert "missed 2 of 5 obvious items (at most 1 allowed)" in out.loc["careless", "reasons"]
    assert out.loc["fast", "decision"] == "reject" and "median 300 ms" in out.loc["fast", "reasons"]
    assert out.loc["flagged", "decision"] == "approve" and "not rejected for it" in out.loc["flagged", "reasons"]
    assert out.loc["left", "decision"] == "" and "40 of 100" in out.loc["left", "reasons"]
    assert out.loc["unqualified", "decision"] == "screened_out"
    mturk = mturk_columns(out.reset_index()).set_index("worker_id")
    assert mturk.loc["good", "Approve"] == "x" and mturk.loc["good", "Reject"] == ""
    assert mturk.loc["careless", "Approve"] == "" and mturk.loc["careless", "Reject"].startswith("failed attention")
    assert mturk.loc["left", "Approve"] == "" and mturk.loc["left", "Reject"] == ""


def test_end_reason_is_in_the_reasons_of_an_ended_worker():
    """Catches a screened-out worker told "did not pass the qualification" when the attention checks
    ended the session, and an expiry reason lost from an unfinished worker's row."""
    workers = pd.DataFrame([
        _worker(worker_id="ended", state="screened_out", items_rated=30, end_reason="the same score 12 times in a row"),
        _worker(worker_id="unqualified", state="screened_out", items_rated=0, end_reason=""),
        _worker(worker_id="left", state="expired", items_rated=40, end_reason="no answer for more than 60 minutes"),
    ])
    out = propose_decisions(workers).set_index("worker_id")
    assert out.loc["ended", "reasons"] == "screened out: the same score 12 times in a row"
    assert out.loc["unqualified", "reasons"] == "did not pass the qualification"
    assert out.loc["left", "reasons"] == "did not finish (expired: 40 of 100 items; no answer for more than 60 minutes)"
