"""``manage.py run_study STUDY_FILE [--serve]``: create or resume a study and generate its stimuli."""

from __future__ import annotations

import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.urls import reverse
from tqdm import tqdm

from ratings import crowd, dispatch, enrolment, generation, progress, studies
from ratings.models import Stimulus, Study, absolute_url
from ratings.study_file import StudyFileError, load_study_file


class Command(BaseCommand):
    help = "Validate a study file, create or resume the study, generate every stimulus once, and print a summary."

    def add_arguments(self, parser):
        parser.add_argument("study_file")
        parser.add_argument("--serve", action="store_true", help="then serve the site locally for raters")
        parser.add_argument("--addrport", default="127.0.0.1:8000", help="with --serve (default 127.0.0.1:8000)")
        parser.add_argument("--retry", action="store_true",
                            help="also re-send failed stimuli and ones left queued/running by an earlier run")
        parser.add_argument("--accept-failures", action="store_true",
                            help="open the study to raters even though some stimuli failed; sessions leave those out")
        parser.add_argument("--no-wait", action="store_true", help="enqueue and return without waiting for workers")
        parser.add_argument("--timeout", type=float, default=0, help="give up waiting after this many seconds (0: never)")

    def handle(self, *args, **opts):
        try:
            config = load_study_file(opts["study_file"], datasets_root=settings.SR_DATASETS_ROOT)
            result = studies.create_or_resume_study(config)
        except (StudyFileError, studies.StudyConflict) as exc:
            raise CommandError(str(exc)) from None
        study = result.study
        verb = "created" if result.created else "resumed"
        self.stdout.write(f"{verb} study {study.name}: {study.stimuli.count()} stimuli ({result.new_stimuli} new)")
        if study.raters_target and study.raters.count() < study.raters_target:
            studies.create_invitations(study, study.raters_target - study.raters.count())

        eager = dispatch.tasks_run_in_process()
        total = study.stimuli.count()
        bar = tqdm(total=total, desc="stimuli", unit="img", disable=opts["verbosity"] == 0, file=self.stderr._out)
        finished = lambda: study.stimuli.filter(state__in=[Stimulus.State.DONE, Stimulus.State.FAILED]).count()
        bar.update(finished())
        claims: list[tuple[int, str]] = []
        try:
            sent = dispatch.enqueue_pending(study, retry=opts["retry"], claims=claims,
                                            on_sent=(lambda s: bar.update(1)) if eager else None)
        except KeyboardInterrupt:
            if eager:  # hand back the stimulus being made, so the next run makes it
                dispatch.release_claims(claims)
            raise
        if not eager:
            self.stdout.write(f"sent {sent} tasks to {dispatch.broker_url()} (queues: cpu, gpu)")
            if not opts["no_wait"]:
                self._wait(study, bar, finished, opts["timeout"])
        bar.close()
        generation.refresh_study_state(study.pk, accept_failures=opts["accept_failures"])
        study.refresh_from_db()
        status = progress.study_status(study)
        self.stdout.write(progress.format_status(status))
        if opts["accept_failures"]:
            self._report_accepted(study, status)
        stuck = status["stimuli"]["queued"] + status["stimuli"]["running"]
        if eager and stuck:
            self.stdout.write(f"{stuck} stimuli were claimed by another run_study that is still running or "
                              f"was killed; if none is running, rerun with --retry")
        if status["stimuli"]["failed"] and not opts["accept_failures"]:
            self.stdout.write("fix the inputs named above and rerun with --retry to make the failed stimuli again")
        self._print_join_instructions(study, opts["addrport"])
        if opts["serve"]:
            call_command("runserver", opts["addrport"], use_reloader=False)

    def _wait(self, study, bar, finished, timeout):
        start, done = time.monotonic(), bar.n
        while True:
            now_done = finished()
            bar.update(now_done - done)
            done = now_done
            if done >= bar.total:
                return
            if timeout and time.monotonic() - start > timeout:
                raise CommandError(f"gave up after {timeout:.0f} s with {bar.total - done} stimuli unfinished; "
                                   f"are workers consuming the cpu and gpu queues? (study_status {study.name})")
            time.sleep(1.0)

    def _report_accepted(self, study, status):
        todo = status["stimuli"]["pending"] + status["stimuli"]["queued"] + status["stimuli"]["running"]
        if todo:
            self.stdout.write(f"--accept-failures: {todo} stimuli are still to do, so the study is not opened yet; "
                              f"rerun with --accept-failures once they are finished")
            return
        excluded = generation.failed_stimuli(study)
        if excluded and study.state == Study.State.READY:
            self.stdout.write(f"--accept-failures: study {study.name} is open to raters without these "
                              f"{len(excluded)} failed stimuli (left out of every session):")
            for name in excluded:
                self.stdout.write(f"  excluded {name}")

    def _print_crowd_link(self, study, cap):
        """The URL to paste into the crowd platform (on SITE_URL: the address workers reach)."""
        link = crowd.study_link(study.crowd, absolute_url(study.get_enrolment_url()))
        target = enrolment.enrolment_target(study)
        self.stdout.write(f"or through the crowd platform: enrolment closes at {target} completed sessions "
                          f"(at most {cap} live at once); stalled sessions expire after "
                          f"{study.crowd.stall_minutes} minutes")
        if study.crowd.platform == "prolific":
            self.stdout.write(f"Prolific study URL (paste as the study's URL; Prolific fills in the {{{{%...%}}}} "
                              f"parts): {link}")
        elif study.crowd.platform == "mturk":
            self.stdout.write(f"MTurk ExternalQuestion URL (the <ExternalURL> of the HIT's ExternalQuestion; MTurk "
                              f"appends assignmentId, hitId, workerId and turkSubmitTo; it must be https): {link}")
        else:
            self.stdout.write(f"Study URL (replace WORKER_ID by the platform's placeholder for the worker id): {link}")

    def _print_join_instructions(self, study, addrport):
        base = f"http://{addrport}"
        self.stdout.write("")
        self.stdout.write(f"Raters join with their personal links (python manage.py invite_raters {study.name} --count N),")
        cap = enrolment.enrolment_cap(study)
        if cap and study.crowd is not None:
            self._print_crowd_link(study, cap)
        elif cap:
            self.stdout.write(f"or through the open-enrolment link (at most {cap} raters join by it): "
                              f"{absolute_url(study.get_enrolment_url(), base)}?worker_id=WORKER_ID")
        else:
            self.stdout.write("(open enrolment is off: the study file sets no target, [rating] raters)")
        invited = list(study.raters.filter(source="invitation", session__started_at__isnull=True)[:5])
        for rater in invited:
            self.stdout.write(f"  {rater.label}: {absolute_url(rater.get_absolute_url(), base)}")
        dashboard = absolute_url(reverse("ratings:dashboard", kwargs={"name": study.name}), base)
        self.stdout.write(f"Researcher dashboard: {dashboard} (staff login; create one with "
                          f"`python manage.py createsuperuser`)")
