"""What the researcher dashboard shows: counts per rater, and the flags and MOS table of the last report build.

Everything here is SQL aggregates or small files of the last build (``ratings.reports``): the
dashboard refreshes every 30 seconds, so it recomputes no statistic (screening, MOS) itself.
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import Count

from . import progress, reports
from .models import Rater, Rating, Session, SessionItem, Study

__all__ = ["summary"]


def _counts(queryset, key: str) -> dict[int, int]:
    return dict(queryset.order_by().values_list(key).annotate(n=Count("pk")).values_list(key, "n"))


def _rater_rows(study: Study, flags: dict[str, tuple[bool, str]]) -> list[dict]:
    """One row per rater: its session and counts (items: scored items planned; rated: its ratings,
    calibration included), and its flag in the last build."""
    items = _counts(SessionItem.objects.filter(session__rater__study=study).exclude(kind=SessionItem.Kind.CALIBRATION),
                    "session__rater_id")
    rated = _counts(Rating.objects.filter(rater__study=study), "rater_id")
    states, sources = dict(Session.State.choices), dict(Rater.Source.choices)
    rows = []
    for pk, label, source, external_id, dpr, viewport, state, started, completed in (
            study.raters.order_by("label").values_list(
                "pk", "label", "source", "external_id", "device_pixel_ratio", "viewport", "session__state",
                "session__started_at", "session__completed_at")):
        flagged, reasons = flags.get(reports.rater_key(label), (False, ""))
        rows.append({"label": label, "source": sources.get(source, source), "external_id": external_id,
                     "state": states.get(state, state or ""), "rated": rated.get(pk, 0), "items": items.get(pk, 0),
                     "started": started, "completed": completed, "dpr": dpr, "viewport": viewport,
                     "flagged": flagged, "reasons": reasons})
    return rows


def _flags(build: reports.Build | None) -> dict[str, tuple[bool, str]]:
    if build is None or build.folder is None:
        return {}
    raters = build.raters()
    return {r: (bool(f), reasons or "") for r, f, reasons in
            zip(raters["rater_id"], raters["flagged"], raters["flag_reasons"])}


def _mos_rows(study: Study, build: reports.Build | None) -> list[dict]:
    """The last build's MOS table, dataset and method names as the study spells them (the CSV escapes
    names a spreadsheet would run as formulas)."""
    if build is None or build.folder is None:
        return []
    names = {reports.rater_key(n): n for n in [*study.datasets.values_list("name", flat=True),
                                              *study.conditions.values_list("name", flat=True)]}
    mos = build.mos()
    rows = mos[["dataset", "method", "n", "mos", "std", "ci_low", "ci_high"]].to_dict("records")
    for row in rows:
        row["dataset"], row["method"] = names.get(row["dataset"], row["dataset"]), names.get(row["method"], row["method"])
    return rows


def _build_line(build: reports.Build | None, ratings: int) -> dict:
    """What the page says about the last build: its age, the ratings it was made from, how many since."""
    if build is None or build.folder is None:
        return {"built": False}
    return {"built": True, "built_at": build.built_at, "from": f"{build.ratings:,}", "of": f"{ratings:,}",
            "new": f"{max(ratings - build.ratings, 0):,}"}


def summary(study: Study) -> dict:
    """Context for the dashboard page."""
    build = reports.last_build(study)
    status = progress.study_status(study, build=build)
    holder = reports.lock_holder(study)
    failed = bool(build and build.error)
    return {
        "status": status, "build": build, "report": _build_line(build, status["ratings"]),
        "building_since": datetime.fromisoformat(holder["since"]) if holder else None,
        "build_error": build.error if failed else "", "raters": _rater_rows(study, _flags(build)),
        "mos": _mos_rows(study, build), "flagged": status["raters"]["flagged"],
    }
