"""``manage.py study_status STUDY [--json]``: stimuli done/pending/failed per method, raters and ratings.

A crowd study's stalled sessions are expired first (``ratings.expiry``), so the sessions it calls in
progress are under way now; the dashboard shows them as of the last expiry (at enrolment, or by the
scheduled ``expire_sessions``), since a page view changes nothing."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from ratings import expiry, progress
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
        expiry.expire_stalled(study)
        status = progress.study_status(study)
        if opts["json"]:
            self.stdout.write(json.dumps(status, indent=2))
        else:
            self.stdout.write(progress.format_status(status))
