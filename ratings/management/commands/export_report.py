"""``manage.py export_report STUDY --out DIR``: the full analysis of a study's ratings."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from ratings.studies import StudyNotFound, get_study
from ratings.reports import export_report


class Command(BaseCommand):
    help = ("Write ratings.csv, mos.csv, pairwise.csv, raters.csv, the plots, table2.tex, a SUREAL dataset "
            "file and a standalone report.html for a study.")

    def add_arguments(self, parser):
        parser.add_argument("study")
        parser.add_argument("--out", required=True, help="folder to write (created if missing)")
        parser.add_argument("--n-boot", type=int, default=2000, help="bootstrap replicates for the intervals")

    def handle(self, *args, **opts):
        try:
            paths = export_report(get_study(opts["study"]), opts["out"], n_boot=opts["n_boot"])
        except (StudyNotFound, ValueError) as exc:
            raise CommandError(str(exc)) from None
        for key in sorted(paths):
            self.stdout.write(f"{key:<28} {paths[key]}")
        self.stdout.write(f"open {paths['html']}")
