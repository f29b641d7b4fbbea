"""``manage.py expire_sessions [STUDY]``: expire the stalled sessions of crowd studies now.

For a deployment without Celery beat, from cron (every five minutes, say)::

    */5 * * * * cd CHECKOUT && .venv/bin/python manage.py expire_sessions   (CHECKOUT: the deployment's folder)

Enrolment expires a study's stalled sessions by itself before it hands out items, so this only keeps
the dashboard's and ``study_status``'s counts current while nobody enrols. The rule is
:mod:`ratings.expiry`'s; a lab study (no ``[crowd]`` table) never expires a session.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from ratings import expiry
from ratings.studies import StudyNotFound, get_study


class Command(BaseCommand):
    help = "Expire the sessions of crowd studies that stalled longer than [crowd] stall_minutes."

    def add_arguments(self, parser):
        parser.add_argument("study", nargs="?", help="one study (default: every crowd study not closed)")

    def handle(self, *args, **opts):
        if opts["study"]:
            try:
                study = get_study(opts["study"])
            except StudyNotFound as exc:
                raise CommandError(str(exc)) from None
            if study.crowd is None:
                raise CommandError(f"study {study.name} has no [crowd] table: its sessions never expire")
            expired = {study.name: expiry.expire_stalled(study)}
        else:
            expired = expiry.expire_all()
        for name, n in expired.items():
            self.stdout.write(f"{name}: {n} stalled session{'s' if n != 1 else ''} expired")
        if not expired:
            self.stdout.write("no crowd study is open")
