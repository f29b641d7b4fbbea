"""Writing a study's analysis report (``export_report`` and the dashboard share it)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from django.conf import settings
from django.db.models import Count, Max

from analysis.report import write_report
from sr_models.files import atomic_write

from .export import ratings_frame, stimuli_frame, study_info
from .models import Rating, Stimulus, Study

__all__ = ["dashboard_report", "export_report"]


def export_report(study: Study, out_dir: str | Path, *, n_boot: int = 2000) -> dict[str, Path]:
    """All report files for ``study`` in ``out_dir`` (see :func:`analysis.report.write_report`, whose
    CSV writer escapes text cells against formula injection)."""
    ratings = ratings_frame(study)
    if ratings.empty:
        raise ValueError(f"study {study.name!r} has no ratings yet: nothing to analyse")
    stimuli = stimuli_frame(study)
    info = study_info(study)
    return write_report(out_dir, ratings, stimuli, info, n_boot=n_boot, seed=study.seed)


def _digest(rows) -> str:
    digest = hashlib.sha256()
    for row in rows:
        digest.update(repr(row).encode())
    return digest.hexdigest()


def _fingerprint(study: Study) -> dict:
    """Everything the report is made from, in short: the ratings, and the stimuli (states, metrics,
    files: a stimulus made or re-measured changes Table 2 and the metric plots) and the methods'
    provenance, so a report is reused only while all of them are unchanged."""
    agg = Rating.objects.filter(rater__study=study).aggregate(n=Count("pk"), max_id=Max("pk"), last=Max("created_at"))
    stimuli = Stimulus.objects.filter(study=study).order_by("pk").values_list(
        "pk", "state", "psnr_y", "ssim_y", "lpips", "dists", "niqe", "sha256", "file", "finished_at",
        "image__dataset__role")
    conditions = study.conditions.order_by("pk").values_list("pk", "name", "position", "provenance")
    return {"ratings": agg["n"], "max_id": agg["max_id"], "last": agg["last"].isoformat() if agg["last"] else None,
            "raters": study.raters.count(), "stimuli": _digest(stimuli), "conditions": _digest(conditions),
            "config": study.config_sha256, "title": study.title}


def _read_stamp(stamp: Path) -> dict | None:
    try:
        return json.loads(stamp.read_text())
    except (OSError, ValueError):
        return None  # missing or unreadable: make the report again


def _write_stamp(stamp: Path, fingerprint: dict) -> None:
    """Temporary file and rename: a reader (another web process) never sees half a stamp."""
    with atomic_write(stamp, "w") as handle:
        json.dump(fingerprint, handle)


def dashboard_report(study: Study) -> Path:
    """The study's report under MEDIA_ROOT/reports/<study>/, rewritten only when what it is made from
    changed (see ``_fingerprint``)."""
    out = Path(settings.MEDIA_ROOT) / "reports" / study.name
    stamp = out / ".fingerprint.json"
    current = _fingerprint(study)
    if not (_read_stamp(stamp) == current and (out / "report.html").exists()):
        export_report(study, out)
        _write_stamp(stamp, current)
    return out
