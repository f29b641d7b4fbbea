"""``manage.py import_ratings FILE.csv --study NAME``: ratings or paired judgments gathered elsewhere,
all or nothing (which of the two, the file's header says)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from analysis.io import RatingsFileError
from ratings import dispatch, generation
from ratings.judgment_importing import import_file


class Command(BaseCommand):
    help = ("Import ratings in the tidy format rater,dataset,image,method,score[,created_at,...], or paired "
            "judgments rater,dataset,image,method_a,method_b,choice[,...]; the study is created if it does not "
            "exist. A malformed row is reported with its line number and nothing is imported.")

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--study", required=True)
        parser.add_argument("--make-stimuli", action="store_true",
                            help="then make the stimuli of known datasets and methods (for their PSNR/SSIM/LPIPS)")

    def handle(self, *args, **opts):
        try:
            result = import_file(opts["file"], opts["study"])
        except (RatingsFileError, OSError) as exc:
            raise CommandError(f"nothing was imported. {exc}") from None
        verb = "created" if result.created else "added to"
        what = "judgments" if result.study.is_paired else "ratings"
        self.stdout.write(f"{verb} study {result.study.name}: {result.ratings} {what} from {result.raters} raters")
        if result.response_ms_dropped:
            self.stdout.write(f"{result.response_ms_dropped} response times over an hour were stored as missing")
        if opts["make_stimuli"]:
            sent = dispatch.enqueue_pending(result.study)
            generation.refresh_study_state(result.study.pk)
            self.stdout.write(f"sent {sent} stimuli to be made ({'done' if dispatch.tasks_run_in_process() else 'queued'})")
