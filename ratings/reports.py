"""Writing a study's analysis report (``export_report`` and the dashboard share it)."""

from __future__ import annotations

import json
from pathlib import Path

from django.conf import settings
from django.db.models import Max

from analysis.report import write_report

from .export import ratings_frame, stimuli_frame, study_info
from .models import Rating, Study

__all__ = ["export_report", "dashboard_report"]


def export_report(study: Study, out_dir: str | Path, *, n_boot: int = 2000) -> dict[str, Path]:
    """All report files for ``study`` in ``out_dir`` (see :func:`analysis.report.write_report`)."""
    ratings = ratings_frame(study)
    if ratings.empty:
        raise ValueError(f"study {study.name!r} has no ratings yet: nothing to analyse")
    stimuli = stimuli_frame(study)
    info = study_info(study)
    return write_report(out_dir, ratings, stimuli, info, n_boot=n_boot, seed=study.seed)


def _fingerprint(study: Study) -> dict:
    agg = Rating.objects.filter(rater__study=study).aggregate(n=Max("pk"), last=Max("created_at"))
    return {"ratings": Rating.objects.filter(rater__study=study).count(), "max_id": agg["n"],
            "last": agg["last"].isoformat() if agg["last"] else None, "config": study.config_sha256}


def dashboard_report(study: Study) -> Path:
    """The study's report under MEDIA_ROOT/reports/<study>/, rewritten only when ratings changed."""
    out = Path(settings.MEDIA_ROOT) / "reports" / study.name
    stamp = out / ".fingerprint.json"
    current = _fingerprint(study)
    if not (stamp.exists() and json.loads(stamp.read_text()) == current and (out / "report.html").exists()):
        export_report(study, out)
        stamp.write_text(json.dumps(current))
    return out
