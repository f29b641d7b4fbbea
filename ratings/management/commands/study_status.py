"""``manage.py study_status STUDY [--json]``: stimuli done/pending/failed per method, raters and ratings."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from ratings import progress
from ratings.studies import StudyNotFound, get_study


class Command(BaseCommand):
    help = "Print the generation and rating state of a study."

    def add_arguments(self, parser):
        parser.add_argument("study")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **opts):
        try:
            study = get_study(opts["study"])
        except StudyNotFound as exc:
            raise CommandError(str(exc)) from None
        status = progress.study_status(study)
        if opts["json"]:
            self.stdout.write(json.dumps(status, indent=2))
        else:
            self.stdout.write(progress.format_status(status))
