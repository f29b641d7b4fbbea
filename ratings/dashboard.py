"""What the researcher dashboard shows: progress per rater, flags and a live MOS table."""

from __future__ import annotations

import warnings

from django.db.models import Count, Q

from analysis import screening, stats

from . import progress
from .export import ratings_frame
from .models import SessionItem, Study

__all__ = ["summary"]


def _rater_rows(study: Study) -> list[dict]:
    raters = (
        study.raters.select_related("session")
        .annotate(
            items=Count("session__items", filter=~Q(session__items__kind=SessionItem.Kind.CALIBRATION), distinct=True),
            rated=Count("ratings", distinct=True),
        )
        .order_by("label")
    )
    return [
        {"label": r.label, "source": r.get_source_display(), "external_id": r.external_id,
         "state": r.session.get_state_display(), "rated": r.rated, "items": r.items,
         "started": r.session.started_at, "completed": r.session.completed_at, "dpr": r.device_pixel_ratio,
         "viewport": r.viewport, "flagged": False, "reasons": ""}
        for r in raters
    ]


def summary(study: Study, request=None) -> dict:
    """Context for the dashboard page."""
    status = progress.study_status(study)
    rows = _rater_rows(study)
    ratings = ratings_frame(study)
    mos, flags_note = [], ""
    if not ratings.empty:
        mos = stats.mos_table(ratings).to_dict("records")
        if ratings["rater_id"].nunique() >= 3:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # small, partial studies: NaNs are expected here
                report = screening.rater_report(ratings)
            by_label = {r["rater_id"]: r for r in report.to_dict("records")}
            for row in rows:
                flagged = by_label.get(row["label"])
                if flagged:
                    row["flagged"], row["reasons"] = bool(flagged["flagged"]), flagged.get("flag_reasons", "")
        else:
            flags_note = "Rater screening starts once three raters have rated."
    return {"status": status, "raters": rows, "mos": mos, "flags_note": flags_note,
            "flagged": sum(r["flagged"] for r in rows)}
