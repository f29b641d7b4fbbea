"""What the researcher dashboard shows: counts per rater, and the flags and MOS table of the last report build.

Everything here is SQL aggregates or small files of the last build (``ratings.reports``): the
dashboard refreshes every 30 seconds, so it recomputes no statistic (screening, MOS) itself.
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import Count

from . import progress, reports
from .models import Judgment, Rater, Rating, Session, SessionItem, Study

__all__ = ["summary"]


def _counts(queryset, key: str) -> dict[int, int]:
    return dict(queryset.order_by().values_list(key).annotate(n=Count("pk")).values_list(key, "n"))


#: Raters per dashboard page: a crowd study has thousands, and the page refreshes every 30 seconds.
RATERS_PER_PAGE = 200


def _rater_rows(study: Study, flags: dict[str, tuple[bool, str]], page: int) -> tuple[list[dict], dict]:
    """One page of raters (by label): its session and counts (items: scored items planned; rated: its
    ratings, calibration included), and its flag in the last build; and where the page is."""
    raters = study.raters.order_by("label")
    total = raters.count()
    pages = max(1, -(-total // RATERS_PER_PAGE))
    number = min(max(page, 1), pages)
    chunk = list(raters.values_list(
        "pk", "label", "source", "external_id", "device_pixel_ratio", "viewport", "session__state",
        "session__started_at", "session__completed_at")[(number - 1) * RATERS_PER_PAGE:number * RATERS_PER_PAGE])
    ids = [row[0] for row in chunk]
    items = _counts(SessionItem.objects.filter(session__rater_id__in=ids).exclude(kind=SessionItem.Kind.CALIBRATION),
                    "session__rater_id")
    rated = _counts(Rating.objects.filter(rater_id__in=ids), "rater_id")
    for pk, n in _counts(Judgment.objects.filter(rater_id__in=ids), "rater_id").items():
        rated[pk] = rated.get(pk, 0) + n
    states, sources = dict(Session.State.choices), dict(Rater.Source.choices)
    rows = []
    for pk, label, source, external_id, dpr, viewport, state, started, completed in chunk:
        flagged, reasons = flags.get(reports.rater_key(label), (False, ""))
        rows.append({"label": label, "source": sources.get(source, source), "external_id": external_id,
                     "state": states.get(state, state or ""), "rated": rated.get(pk, 0), "items": items.get(pk, 0),
                     "started": started, "completed": completed, "dpr": dpr, "viewport": viewport,
                     "flagged": flagged, "reasons": reasons})
    where = {"number": number, "pages": pages, "total": total, "first": (number - 1) * RATERS_PER_PAGE + 1 if rows else 0,
             "last": (number - 1) * RATERS_PER_PAGE + len(rows), "previous": number - 1 if number > 1 else None,
             "next": number + 1 if number < pages else None}
    return rows, where


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
    if study.is_paired:
        rows = build.scale()[["dataset", "method", "n", "thurstone", "thurstone_ci_low", "thurstone_ci_high"]]
        rows = rows.to_dict("records")
    else:
        rows = build.mos()[["dataset", "method", "n", "mos", "std", "ci_low", "ci_high"]].to_dict("records")
    for row in rows:
        row["dataset"], row["method"] = names.get(row["dataset"], row["dataset"]), names.get(row["method"], row["method"])
    return rows


def _build_line(build: reports.Build | None, ratings: int) -> dict:
    """What the page says about the last build: its age, the ratings it was made from, how many since."""
    if build is None or build.folder is None:
        return {"built": False}
    return {"built": True, "built_at": build.built_at, "from": f"{build.ratings:,}", "of": f"{ratings:,}",
            "new": f"{max(ratings - build.ratings, 0):,}"}


def summary(study: Study, page: int = 1) -> dict:
    """Context for the dashboard page (``page``: of the raters table)."""
    build = reports.last_build(study)
    status = progress.study_status(study, build=build)
    holder = reports.lock_holder(study)
    failed = bool(build and build.error)
    rows, where = _rater_rows(study, _flags(build), page)
    return {
        "status": status, "build": build, "report": _build_line(build, status["ratings"] + status["judgments"]),
        "paired": study.is_paired,
        "building_since": datetime.fromisoformat(holder["since"]) if holder else None,
        "build_error": build.error if failed else "", "raters": rows, "raters_page": where,
        "mos": _mos_rows(study, build), "flagged": status["raters"]["flagged"],
    }
