"""crowd_decisions: the worker table from the database and the CSV a platform's bulk tools take."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from ratings import sessions
from ratings.crowd import platform_worker_id
from ratings.crowd_workers import worker_table
from ratings.enrolment import normalise_worker_id
from ratings.expiry import expire_stalled
from ratings.models import Rater, Session, SessionItem, Study

from .conftest import RATING_STUDY, ready_study

pytestmark = pytest.mark.django_db

CROWD = """
[crowd]
platform = "{platform}"
stall_minutes = 30

[attention]
straight_line = 8
end_session = true
"""
# The documented columns of --format generic (docs/crowd.md), in order.
GENERIC_COLUMNS = ["rater_id", "worker_id", "state", "time_spent_s", "items_rated", "items_planned", "gold_n",
                   "gold_misses", "median_response_ms", "flagged", "flag_reasons", "decision", "bonus", "reasons",
                   "platform_worker_id", "STUDY_ID", "SESSION_ID", "end_reason"]
BASE = {"nearest": 1, "bicubic": 3, "hr": 5}


def crowd_study(datasets_root, platform="prolific") -> Study:
    return ready_study(RATING_STUDY + CROWD.format(platform=platform), datasets_root)


def worker(study, worker_id, **ids) -> Rater:
    """A rater as open enrolment stores a crowd worker: normalised, the platform's name in front, its ids kept."""
    rater = Rater.objects.create(study=study, label=f"w{Rater.objects.filter(study=study).count() + 1:04d}",
                                 source=Rater.Source.OPEN, platform_ids=ids,
                                 external_id=platform_worker_id(study.crowd.platform, normalise_worker_id(worker_id)))
    Session.objects.create(rater=rater)
    return rater


def careful_score(item, miss_gold=False):
    """What an attentive rater gives: by method, a point up or down by image; gold as expected."""
    if item.kind == SessionItem.Kind.GOLD:
        return 6 - item.expected_score if miss_gold else item.expected_score
    score = BASE[item.stimulus.condition.name] + (1 if len(item.stimulus.image.name) % 2 else -1)
    return min(5, max(1, score))


def rate(rater, n=None, *, score=careful_score, response_ms=2500):
    """Consent, skip the calibration, then rate ``n`` items (None: all), each shown 10 s before."""
    sessions.start_session(rater, device_pixel_ratio=1.0, viewport="1366x768")
    session = Session.objects.get(rater=rater)
    while session.state == Session.State.CALIBRATION:
        session = sessions.advance_calibration(rater, session.position)
    done = 0
    while session.state == Session.State.RATING and (n is None or done < n):
        item = sessions.current_item(session)
        SessionItem.objects.filter(pk=item.pk).update(shown_at=timezone.now() - dt.timedelta(seconds=10))
        item.refresh_from_db()
        session = sessions.record_rating(rater, sessions.item_token(item), score(item), response_ms).session
        done += 1
    return session


@pytest.fixture
def workers(datasets_root, media_root):
    """A Prolific study with one worker of each state."""
    study = crowd_study(datasets_root)
    made = {}
    made["clean"] = worker(study, "=HYPERLINK(1)", STUDY_ID="s1", SESSION_ID="clean-session")
    rate(made["clean"])
    made["gold"] = worker(study, "5f00gold", STUDY_ID="s1", SESSION_ID="gold-session")
    rate(made["gold"], score=lambda item: careful_score(item, miss_gold=True))
    made["fast"] = worker(study, "5f00fast", STUDY_ID="s1", SESSION_ID="fast-session")
    rate(made["fast"], response_ms=300)
    made["screened"] = worker(study, "5f00screened", STUDY_ID="s1", SESSION_ID="screened-session")
    rate(made["screened"], score=lambda item: 3)  # straight-lining: ended by [attention] at 8 in a row
    made["expired"] = worker(study, "5f00expired", STUDY_ID="s1", SESSION_ID="expired-session")
    rate(made["expired"], 3)
    Session.objects.filter(rater=made["expired"]).update(last_active_at=timezone.now() - dt.timedelta(minutes=31))
    made["progress"] = worker(study, "5f00progress", STUDY_ID="s1", SESSION_ID="progress-session")
    rate(made["progress"], 2)  # its consent expires the stalled session (ratings.sessions.start_session)
    assert expire_stalled(study) == 0
    assert Session.objects.get(rater=made["expired"]).state == Session.State.EXPIRED
    made["idle"] = worker(study, "5f00idle", STUDY_ID="s1", SESSION_ID="idle-session")
    return study, made


def test_each_state_gets_its_decision_and_reasons(workers):
    """One worker of each state from real sessions. Catches a state read wrongly (an expired or
    in-progress worker decided, a screened-out worker rejected), gold misses counted by another
    rule than the analysis' (a miss is more than one point off), the server's response time lost,
    the end reason left out, and ids shown with the platform's prefix."""
    study, made = workers
    table = worker_table(study).set_index("rater_id")
    rows = {name: table.loc[rater.label] for name, rater in made.items()}
    assert [rows[n]["state"] for n in made] == ["complete", "complete", "complete", "screened_out", "expired",
                                                "in progress", "not started"]
    clean = rows["clean"]
    assert clean["platform_worker_id"] == "=hyperlink(1)" and clean["worker_id"] == "prolific:=hyperlink(1)"
    assert (clean["STUDY_ID"], clean["SESSION_ID"]) == ("s1", "clean-session")
    assert clean["items_rated"] == clean["items_planned"] == 19  # 15 test, 2 repeats, 2 gold
    assert (clean["gold_n"], clean["gold_misses"]) == (2, 0) and clean["median_response_ms"] == 2500
    assert (rows["gold"]["gold_n"], rows["gold"]["gold_misses"]) == (2, 2)
    assert rows["fast"]["median_response_ms"] == 300
    assert rows["expired"]["items_rated"] == 3 and rows["progress"]["items_rated"] == 2
    assert rows["expired"]["end_reason"] == "no answer for more than 30 minutes"
    screened_reason = Session.objects.get(rater=made["screened"]).end_reason
    assert "8 times in a row" in screened_reason and rows["screened"]["end_reason"] == screened_reason
    assert rows["screened"]["items_rated"] == 8
    assert clean["time_spent_s"] >= 0 and pd.isna(rows["idle"]["time_spent_s"])

    from analysis.crowd_decisions import propose_decisions

    decided = propose_decisions(table.reset_index()).set_index("worker_id")
    decision = {n: decided.loc[r.external_id, "decision"] for n, r in made.items()}
    assert decision == {"clean": "approve", "gold": "reject", "fast": "reject", "screened": "screened_out",
                        "expired": "", "progress": "", "idle": ""}
    reasons = {n: decided.loc[r.external_id, "reasons"] for n, r in made.items()}
    assert "missed 2 of 2 obvious items (at most 1 allowed)" in reasons["gold"]
    assert "median 300 ms per item, below 700 ms" in reasons["fast"]
    assert reasons["screened"] == f"screened out: {screened_reason}"
    assert reasons["expired"] == "did not finish (expired: 3 of 19 items; no answer for more than 30 minutes)"
    assert reasons["progress"] == "did not finish (in progress: 2 of 19 items)"
    assert reasons["idle"] == "did not finish (not started: 0 of 0 items)"


def test_generic_csv_round_trips_with_the_documented_columns(workers, tmp_path, capsys):
    """Catches a column renamed or dropped against docs/crowd.md, a decision lost on the way to the
    file, and a worker id a spreadsheet would run as a formula (=HYPERLINK...) written as it is."""
    study, made = workers
    out = tmp_path / "decisions.csv"
    call_command("crowd_decisions", study.name, "--out", str(out), "--bonus", "0.5")
    frame = pd.read_csv(out, keep_default_na=False, dtype=str)
    assert list(frame.columns) == GENERIC_COLUMNS
    by_label = frame.set_index("rater_id")
    clean = by_label.loc[made["clean"].label]
    assert clean["platform_worker_id"] == "'=hyperlink(1)" and clean["worker_id"] == "prolific:=hyperlink(1)"
    assert clean["decision"] == "approve" and float(clean["bonus"]) == 0.5
    assert by_label.loc[made["gold"].label, "decision"] == "reject"
    assert not any(cell.startswith(("=", "+", "-", "@")) for cell in frame.to_numpy().ravel())
    printed = capsys.readouterr().out
    assert "7 workers of rating: 1 approve, 2 reject, 1 screened out, 3 no decision; bonus for 1 (total 0.50)" in printed


def test_prolific_format_writes_the_bulk_approve_and_bonus_lists(workers, tmp_path):
    """Catches a rejected, screened-out or unfinished worker in the approve list, a bonus line that
    is not Prolific's ``id,amount`` (the stored ``prolific:`` prefix, a header), and the
    formula-like id left unescaped in the lists."""
    study, made = workers
    out = tmp_path / "decisions.csv"
    call_command("crowd_decisions", study.name, "--out", str(out), "--format", "prolific", "--bonus", "1.25")
    assert (tmp_path / "decisions.approve.txt").read_text() == "'=hyperlink(1)\n"
    assert (tmp_path / "decisions.bonus.txt").read_text() == "'=hyperlink(1),1.25\n"
    call_command("crowd_decisions", study.name, "--out", str(out), "--format", "prolific")
    assert (tmp_path / "decisions.bonus.txt").read_text() == ""  # no --bonus: no bonus lines
    with pytest.raises(CommandError, match="is not run on mturk"):  # MTurk's columns need MTurk's ids
        call_command("crowd_decisions", study.name, "--out", str(out), "--format", "mturk")


def test_mturk_format_has_approve_and_reject_as_mturk_reads_them(datasets_root, media_root, tmp_path):
    """Catches MTurk's batch columns misnamed (its upload keys on AssignmentId and reads Approve "x"
    and Reject with the reason), a reject without its reason, and the worker id left in the case
    enrolment folded it to (MTurk's ids are upper case)."""
    study = crowd_study(datasets_root, platform="mturk")
    empty = tmp_path / "empty.csv"  # before anyone enrolled: the columns, no rows (not a crash)
    call_command("crowd_decisions", study.name, "--out", str(empty), "--format", "mturk")
    assert list(pd.read_csv(empty).columns[:5]) == ["HITId", "AssignmentId", "WorkerId", "Approve", "Reject"]
    assert len(pd.read_csv(empty)) == 0
    good = worker(study, "A1GOOD", assignmentId="3GOODASSIGN", hitId="3HIT", turkSubmitTo="https://www.mturk.com")
    rate(good)
    careless = worker(study, "A2CARELESS", assignmentId="3BADASSIGN", hitId="3HIT")
    rate(careless, score=lambda item: careful_score(item, miss_gold=True))
    left = worker(study, "A3LEFT", assignmentId="3LEFTASSIGN", hitId="3HIT")
    rate(left, 1)
    out = tmp_path / "mturk.csv"
    call_command("crowd_decisions", study.name, "--out", str(out), "--format", "mturk")
    frame = pd.read_csv(out, keep_default_na=False, dtype=str)
    assert list(frame.columns[:5]) == ["HITId", "AssignmentId", "WorkerId", "Approve", "Reject"]
    rows = frame.set_index("AssignmentId")
    assert (rows.loc["3GOODASSIGN", "Approve"], rows.loc["3GOODASSIGN", "Reject"]) == ("x", "")
    assert rows.loc["3GOODASSIGN", "WorkerId"] == "A1GOOD" and rows.loc["3GOODASSIGN", "HITId"] == "3HIT"
    assert rows.loc["3BADASSIGN", "Approve"] == ""
    assert rows.loc["3BADASSIGN", "Reject"].startswith("failed attention checks: missed 2 of 2 obvious items")
    assert (rows.loc["3LEFTASSIGN", "Approve"], rows.loc["3LEFTASSIGN", "Reject"]) == ("", "")
    assert "turkSubmitTo" not in frame.columns


def test_attention_rules_flag_post_hoc_when_they_do_not_end_sessions(datasets_root, media_root):
    """With ``end_session = false`` a straight-liner finishes; the table flags them by the same rule.
    Catches the [attention] rules left out of the flags, or evaluated on another order of answers
    than the one shown (a run of 8 exists only in the order shown)."""
    study = crowd_study(datasets_root)
    study.config = {**study.config, "attention": {**study.config["attention"], "end_session": False}}
    study.save(update_fields=["config"])
    liner = worker(study, "5f00liner")
    rate(liner, score=lambda item: 3 if item.position < 14 else careful_score(item))
    careful = worker(study, "5f00careful")
    rate(careful)
    table = worker_table(study).set_index("rater_id")
    assert table.loc[liner.label, "state"] == "complete"
    assert table.loc[liner.label, "flagged"] and "8 times in a row" in table.loc[liner.label, "flag_reasons"]
    assert "times in a row" not in table.loc[careful.label, "flag_reasons"]


def test_query_count_does_not_grow_with_the_workers(datasets_root, media_root):
    """Catches a query per worker (their session, their answers or their ids read one by one): a
    crowd study has ten thousand workers."""
    study = crowd_study(datasets_root)

    def queries(n):
        while Rater.objects.filter(study=study).count() < n:
            rater = worker(study, f"5f{Rater.objects.filter(study=study).count():04d}", STUDY_ID="s1")
            rate(rater, 2)
        with CaptureQueriesContext(connection) as captured:
            table = worker_table(study)
        assert len(table) == n
        return len(captured)

    few = queries(5)
    assert queries(50) == few


PAIRED = """name = "paircrowd"
seed = 5
datasets = ["Set5"]
methods = ["nearest", "bicubic", "hr"]
protocol = "pairwise"

[pairwise]
practice_pairs = 1
gold_pairs = 2
"""


def judge(rater, *, miss_gold=False):
    """Consent, then every pair: practice and gold as expected (or gold against it), the rest alternating."""
    from ratings.pair_steps import PairAnswer

    sessions.start_session(rater, device_pixel_ratio=1.0, viewport="1366x768")
    session = Session.objects.get(rater=rater)
    while (item := sessions.current_item(session)) is not None and not session.is_over:
        SessionItem.objects.filter(pk=item.pk).update(shown_at=timezone.now() - dt.timedelta(seconds=10))
        other = {"left": "right", "right": "left"}
        if item.kind == SessionItem.Kind.PAIR_GOLD:
            side = other[item.expected_side] if miss_gold else item.expected_side
        elif item.kind == SessionItem.Kind.PRACTICE:
            side = item.expected_side
        else:
            side = ("left", "right")[item.position % 2]
        session = sessions.record_judgment(rater, sessions.item_token(item), PairAnswer(side), 1800).session
    return session


def test_a_paired_crowd_study_counts_judgments_and_gold_pairs(datasets_root, media_root, tmp_path):
    """Catches the worker table reading ratings in a paired study (no answers, no gold), gold pairs
    counted by another rule than the pairwise screening's (chosen against the expected side), and
    practice pairs counted as rated items."""
    study = ready_study(PAIRED + CROWD.format(platform="prolific"), datasets_root)
    careful, careless = worker(study, "5f00careful"), worker(study, "5f00careless")
    judge(careful)
    judge(careless, miss_gold=True)
    table = worker_table(study).set_index("rater_id")
    good, bad = table.loc[careful.label], table.loc[careless.label]
    assert good["state"] == bad["state"] == "complete"
    planned = Session.objects.get(rater=careful).planned_scored_items
    assert good["items_rated"] == planned == SessionItem.objects.filter(
        session__rater=careful, kind__in=[SessionItem.Kind.PAIR, SessionItem.Kind.PAIR_GOLD]).count()
    assert (good["gold_n"], good["gold_misses"], bad["gold_n"], bad["gold_misses"]) == (2, 0, 2, 2)
    assert good["median_response_ms"] == 1800
    out = tmp_path / "pairs.csv"
    call_command("crowd_decisions", study.name, "--out", str(out))
    decisions = pd.read_csv(out, keep_default_na=False).set_index("rater_id")["decision"]
    assert (decisions[careful.label], decisions[careless.label]) == ("approve", "reject")
