"""``manage.py invite_raters STUDY --count N``: one personal rating link per line."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from ratings import studies
from ratings.models import absolute_url
from ratings.studies import StudyNotFound, get_study
from ratings.study_file import LIMITS


class Command(BaseCommand):
    help = "Create N rater invitations and print their links, one per line."

    def add_arguments(self, parser):
        parser.add_argument("study")
        parser.add_argument("--count", type=int, required=True)
        parser.add_argument("--base-url", default=None, help="the site's address as raters reach it (default: SITE_URL)")

    def handle(self, *args, **opts):
        if not 1 <= opts["count"] <= LIMITS["raters"]:
            raise CommandError(f"--count must be from 1 to {LIMITS['raters']:,}")
        try:
            study = get_study(opts["study"])
        except StudyNotFound as exc:
            raise CommandError(str(exc)) from None
        for rater in studies.create_invitations(study, opts["count"]):
            self.stdout.write(absolute_url(rater.get_absolute_url(), opts["base_url"]))
