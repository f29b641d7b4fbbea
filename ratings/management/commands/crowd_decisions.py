"""``manage.py crowd_decisions STUDY --out FILE.csv``: proposed approve / reject / bonus per crowd worker.

The worker table (:func:`ratings.crowd_workers.worker_table`) and the proposal
(:func:`analysis.crowd_decisions.propose_decisions`) do the work; this writes them in the form a
platform's bulk tools take (columns in ``docs/crowd.md``), every text cell escaped against
spreadsheet formulas by the report's one CSV writer. Nothing is sent to any platform.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from django.core.management.base import BaseCommand, CommandError

from analysis.crowd_decisions import WORKER_COLUMNS, PaymentRules, mturk_columns, prolific_lists, propose_decisions
from analysis.report import _write_csv, escape_csv_cell  # the one CSV writer, formulas escaped
from ratings.crowd_workers import worker_table
from ratings.studies import StudyNotFound, get_study
from sr_models.files import write_text_atomic

FORMATS = ("generic", "prolific", "mturk")
# MTurk's batch-results file names its columns so; its upload finds each assignment by AssignmentId.
MTURK_NAMES = {"hitId": "HITId", "assignmentId": "AssignmentId", "platform_worker_id": "WorkerId"}
_SUMMARY = (("approve", "approve"), ("reject", "reject"), ("screened_out", "screened out"), ("", "no decision"))


class Command(BaseCommand):
    help = "Propose payment decisions for a crowd study's workers, as a CSV for the platform's bulk tools."

    def add_arguments(self, parser):
        parser.add_argument("study")
        parser.add_argument("--out", required=True, help="the CSV to write")
        parser.add_argument("--bonus", type=float, default=0.0,
                            help="amount for approved workers with every gold item right (default 0: none)")
        parser.add_argument("--min-median-ms", type=float, default=PaymentRules.min_median_response_ms,
                            help="reject finished workers whose median response is faster (default %(default)g; "
                                 "0: no rule)")
        parser.add_argument("--format", choices=FORMATS, default="generic",
                            help="prolific: also FILE.approve.txt and FILE.bonus.txt; mturk: MTurk's "
                                 "batch-results columns (Approve, Reject)")

    def handle(self, *args, **opts):
        try:
            study = get_study(opts["study"])
        except StudyNotFound as exc:
            raise CommandError(str(exc)) from None
        platform = study.crowd.platform if study.crowd else None
        if opts["format"] not in ("generic", platform):  # another platform's ids are not in the table
            raise CommandError(f"study {study.name!r} is not run on {opts['format']} ([crowd] platform: "
                               f"{platform or 'none'}); use --format generic")
        if opts["bonus"] < 0 or opts["min_median_ms"] < 0:
            raise CommandError("--bonus and --min-median-ms must not be negative")
        rules = PaymentRules(min_median_response_ms=opts["min_median_ms"] or None, bonus=opts["bonus"])
        workers = worker_table(study)
        decided = propose_decisions(workers, rules)
        table = pd.concat([workers[["rater_id"]], decided, workers.drop(columns=["rater_id", *WORKER_COLUMNS])],
                          axis=1)
        out = Path(opts["out"])
        if opts["format"] == "mturk":
            table = mturk_columns(table).rename(columns=MTURK_NAMES)
            table = table[[*MTURK_NAMES.values(), "Approve", "Reject",
                           *(c for c in table.columns if c not in (*MTURK_NAMES.values(), "Approve", "Reject"))]]
        _write_csv(out, table)
        written = [out]
        if opts["format"] == "prolific":
            approve, bonus = prolific_lists(table, "platform_worker_id")
            for suffix, lines in ((".approve.txt", approve), (".bonus.txt", bonus)):
                path = out.with_suffix(suffix)
                write_text_atomic(path, "".join(f"{escape_csv_cell(line)}\n" for line in lines))
                written.append(path)
        counts = table["decision"].value_counts()
        summary = ", ".join(f"{counts.get(key, 0)} {words}" for key, words in _SUMMARY)
        paid = table["bonus"] > 0
        self.stdout.write(f"{len(table)} workers of {study.name}: {summary}; bonus for {int(paid.sum())} "
                          f"(total {table.loc[paid, 'bonus'].sum():.2f})")
        self.stdout.write("wrote " + ", ".join(str(p) for p in written) + " (nothing was sent to the platform)")
