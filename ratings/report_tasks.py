"""The report build as a Celery task: in-process (eager) without a broker, on a worker with one.

A web request never builds a report: the dashboard's rebuild button calls :func:`enqueue_build`,
and ``report_file`` serves the last stored build (``ratings.reports``).
"""

from __future__ import annotations

from celery import shared_task

from . import reports
from .models import Study

__all__ = ["build_report", "enqueue_build"]


@shared_task(name="ratings.build_report")
def build_report(study_id: int, force: bool = False) -> dict:
    """Build and store the study's report; a build already running is not doubled (the answer says
    so), and a failure is recorded in the build record beside the last good report."""
    study = Study.objects.get(pk=study_id)
    try:
        done = reports.build(study, force=force)
    except reports.BuildRunning as exc:
        return {"refused": str(exc)}
    return {"folder": done.record.get("folder"), "ratings": done.ratings, "flagged": done.flagged}


def enqueue_build(study: Study) -> None:
    """Ask for a fresh build (forced: the researcher asked for it)."""
    build_report.delay(study.pk, force=True)
