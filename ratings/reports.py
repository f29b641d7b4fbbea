"""A study's analysis report: written on demand (``export_report``) or built and stored for the web.

The stored report lives under ``MEDIA_ROOT/reports/<study>/``::

    build.json              the record of the last build (see :func:`last_build`): its folder,
                            built_at, the fingerprint and number of ratings it was made from, the
                            raters it flagged, and the last failure, if any
    building.json           the lock while a build runs (since, host, pid); one older than
                            ``REPORT_LOCK_STALE_SECONDS``, or left by a dead process of this host,
                            is taken over
    build-<time>-<token>/   the report files of a build; the last two are kept

A build writes into a hidden sibling folder, renames it into place once complete and only then
rewrites ``build.json`` (with ``atomic_write``): that rewrite is the swap, so a reader who took the
folder from the record before it sees the previous complete report, one after it the new one, never
half of either. Web requests only read (:func:`last_build`, :func:`served_file`); the build runs in
the ``ratings.report_tasks.build_report`` task.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import socket
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd
from django.conf import settings
from django.db.models import Count, Max
from django.utils import timezone

from analysis.pairwise_report import write_pairwise_report
from analysis.report import escape_csv_cell, write_report
from sr_models.files import atomic_write

from .export import judgments_frame, ratings_frame, stimuli_frame, study_info
from .models import Judgment, Rating, Stimulus, Study

__all__ = ["Build", "BuildRunning", "build", "export_report", "last_build", "lock_holder", "rater_key", "served_file"]

RECORD = "build.json"
LOCK = "building.json"
#: A build lock older than this is a dead worker's (a build at 10^6 ratings takes minutes); the
#: setting of the same name overrides it.
REPORT_LOCK_STALE_SECONDS = 3600
#: Bootstrap replicates of a stored build (``export_report`` takes its own); the setting of the same
#: name overrides it.
REPORT_N_BOOT = 2000


class BuildRunning(RuntimeError):
    """Another build of the study's report holds the lock."""


def export_report(study: Study, out_dir: str | Path, *, n_boot: int = 2000, max_rating_id: int | None = None,
                  max_judgment_id: int | None = None) -> dict[str, Path]:
    """All report files for ``study`` in ``out_dir``: :func:`analysis.report.write_report` for a 1-5
    study, :func:`analysis.pairwise_report.write_pairwise_report` for a paired one (both escape text
    cells against formula injection); ``max_*_id`` leave out answers that arrived after the build's
    fingerprint was taken."""
    stimuli = stimuli_frame(study)
    info = study_info(study)
    if study.is_paired:
        judgments = judgments_frame(study, max_judgment_id=max_judgment_id)
        if judgments.empty or not (judgments["kind"] == "test").any():
            raise ValueError(f"study {study.name!r} has no judgments yet: nothing to analyse")
        return write_pairwise_report(out_dir, judgments, stimuli, info, n_boot=n_boot, seed=study.seed)
    ratings = ratings_frame(study, max_rating_id=max_rating_id)
    if ratings.empty:
        raise ValueError(f"study {study.name!r} has no ratings yet: nothing to analyse")
    return write_report(out_dir, ratings, stimuli, info, n_boot=n_boot, seed=study.seed)


def _digest(rows) -> str:
    digest = hashlib.sha256()
    for row in rows:
        digest.update(repr(row).encode())
    return digest.hexdigest()


def _fingerprint(study: Study) -> dict:
    """Everything the report is made from, in short: the ratings, and the stimuli (states, metrics,
    files: a stimulus made or re-measured changes Table 2 and the metric plots) and the methods'
    provenance, so a build is skipped only while all of them are unchanged."""
    agg = Rating.objects.filter(rater__study=study).aggregate(n=Count("pk"), max_id=Max("pk"), last=Max("created_at"))
    judged = Judgment.objects.filter(rater__study=study).aggregate(n=Count("pk"), max_id=Max("pk"))
    stimuli = Stimulus.objects.filter(study=study).order_by("pk").values_list(
        "pk", "state", "psnr_y", "ssim_y", "lpips", "dists", "niqe", "sha256", "file", "finished_at",
        "image__dataset__role")
    conditions = study.conditions.order_by("pk").values_list("pk", "name", "position", "provenance")
    return {"ratings": agg["n"], "max_id": agg["max_id"], "last": agg["last"].isoformat() if agg["last"] else None,
            "judgments": judged["n"], "max_judgment_id": judged["max_id"],
            "raters": study.raters.count(), "stimuli": _digest(stimuli), "conditions": _digest(conditions),
            "config": study.config_sha256, "title": study.title}


def _root(name: str) -> Path:
    return Path(settings.MEDIA_ROOT) / "reports" / name


def _read_json(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # missing, or unreadable: as if absent
    return value if isinstance(value, dict) else None


def _write_json(path: Path, value: dict) -> None:
    with atomic_write(path, "w") as handle:
        json.dump(value, handle)


@dataclass(frozen=True)
class Build:
    """The record of a study's last report build (``build.json``)."""

    name: str  # the study's
    record: dict

    @property
    def folder(self) -> Path | None:
        return _root(self.name) / self.record["folder"] if self.record.get("folder") else None

    @property
    def built_at(self) -> datetime | None:
        return datetime.fromisoformat(self.record["built_at"]) if self.record.get("built_at") else None

    @property
    def ratings(self) -> int:
        """Answers (ratings, and judgments of a paired study) in the database when the build began (all
        kinds, as ``progress.study_status`` counts them)."""
        return int(self.record.get("ratings") or 0)

    @property
    def flagged(self) -> int | None:
        """Raters flagged by the build's screening (``raters.csv``'s ``flagged``); None without a build."""
        return self.record.get("flagged") if self.folder else None

    @property
    def error(self) -> str:
        return self.record.get("error") or ""

    def raters(self) -> pd.DataFrame:
        """The build's ``raters.csv`` (one row per rater, screening's flags), rater ids as stored."""
        frame = pd.read_csv(self.folder / "raters.csv", dtype={"rater_id": str, "flag_reasons": str},
                            keep_default_na=False, na_values=[""])
        if "flag_reasons" not in frame.columns:
            frame["flag_reasons"] = ""
        frame["flag_reasons"] = frame["flag_reasons"].fillna("")
        return frame

    def scale(self) -> pd.DataFrame:
        """A paired study's build: ``pairwise_scale.csv`` (JOD and Bradley-Terry per dataset and method)."""
        return pd.read_csv(self.folder / "pairwise_scale.csv", dtype={"dataset": str, "method": str},
                           keep_default_na=False, na_values=[""])

    def mos(self) -> pd.DataFrame:
        """The build's ``mos.csv`` (MOS per dataset and method)."""
        return pd.read_csv(self.folder / "mos.csv", dtype={"dataset": str, "method": str}, keep_default_na=False,
                           na_values=[""])


def last_build(study: Study | str) -> Build | None:
    """The stored record of the study's last build (or failure); None when none was ever tried. Reads
    one small file: cheap enough for every dashboard refresh."""
    name = study if isinstance(study, str) else study.name
    record = _read_json(_root(name) / RECORD)
    return Build(name, record) if record is not None else None


def served_file(study: Study | str, file: str) -> Path | None:
    """The file ``file`` of the last complete build, or None (no build, or no such file in it; paths
    that leave the build's folder are refused)."""
    done = last_build(study)
    if done is None or done.folder is None:
        return None
    folder = done.folder.resolve()
    path = (folder / file).resolve()
    if folder not in path.parents or not path.is_file():
        return None
    return path


def _stale_seconds() -> float:
    return float(getattr(settings, "REPORT_LOCK_STALE_SECONDS", REPORT_LOCK_STALE_SECONDS))


def _is_stale(held: dict | None, lock: Path) -> bool:
    """A lock is a dead build's when it is older than the stale age, or was left by a process of this
    host that no longer runs. An unreadable lock (a writer between create and write) ages by mtime."""
    try:
        since = datetime.fromisoformat(held["since"]).timestamp() if held else lock.stat().st_mtime
    except (OSError, KeyError, ValueError, TypeError):
        return True
    if timezone.now().timestamp() - since > _stale_seconds():
        return True
    if held and held.get("host") == socket.gethostname() and isinstance(held.get("pid"), int):
        try:
            os.kill(held["pid"], 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False  # alive, another user's
    return False


def lock_holder(study: Study | str) -> dict | None:
    """The lock of a build in progress (``since``, ``host``, ``pid``), or None (none, or a stale one)."""
    lock = _root(study if isinstance(study, str) else study.name) / LOCK
    if not lock.exists():
        return None
    held = _read_json(lock)
    return None if _is_stale(held, lock) else held


def _acquire(root: Path) -> str | None:
    """Take the study's build lock; returns its token, or None when a live build holds it."""
    root.mkdir(parents=True, exist_ok=True)
    lock = root / LOCK
    token = secrets.token_hex(8)
    body = json.dumps({"since": timezone.now().isoformat(), "host": socket.gethostname(), "pid": os.getpid(),
                       "token": token})
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        if not _is_stale(_read_json(lock), lock):
            return None
        _write_json(lock, json.loads(body))  # take the dead build's lock over
        held = _read_json(lock)  # two takers at once: the last writer wins, the other backs off
        return token if held and held.get("token") == token else None
    with os.fdopen(fd, "w") as handle:
        handle.write(body)
    return token


def _release(root: Path, token: str) -> None:
    held = _read_json(root / LOCK)
    if held and held.get("token") == token:
        (root / LOCK).unlink(missing_ok=True)


def _prune(root: Path, keep: set[str]) -> None:
    """Remove builds other than ``keep`` and hidden folders of builds that died."""
    for path in root.iterdir():
        if path.is_dir() and path.name not in keep and path.name.lstrip(".").startswith("build-"):
            shutil.rmtree(path, ignore_errors=True)


def build(study: Study, *, force: bool = False, n_boot: int | None = None) -> Build:
    """Build the study's stored report, unless one is running (:class:`BuildRunning`) or, without
    ``force``, the last one was made from what the study holds now. A failure is recorded in
    ``build.json`` beside the last good build, which stays served, and raised."""
    n_boot = int(getattr(settings, "REPORT_N_BOOT", REPORT_N_BOOT)) if n_boot is None else n_boot
    root = _root(study.name)
    token = _acquire(root)
    if token is None:
        raise BuildRunning(f"a build of {study.name!r}'s report is running (since {lock_holder(study) or '?'})")
    try:
        previous = last_build(study)
        record = dict(previous.record) if previous else {}
        fingerprint = _fingerprint(study)
        folder = previous.folder if previous else None
        if not force and folder is not None and record.get("fingerprint") == fingerprint and (folder / "report.html").exists():
            return previous
        started = timezone.now()
        name = f"build-{started:%Y%m%dT%H%M%S}-{token}"
        hidden = root / f".{name}"
        try:
            export_report(study, hidden, n_boot=n_boot, max_rating_id=fingerprint["max_id"],
                          max_judgment_id=fingerprint["max_judgment_id"])
            hidden.rename(root / name)
            flagged = pd.read_csv(root / name / "raters.csv", usecols=["flagged"])["flagged"]
        except Exception as exc:
            shutil.rmtree(hidden, ignore_errors=True)
            record.update(error=f"{type(exc).__name__}: {exc}", failed_at=timezone.now().isoformat())
            _write_json(root / RECORD, record)
            raise
        record = {"folder": name, "built_at": started.isoformat(), "seconds": (timezone.now() - started).total_seconds(),
                  "fingerprint": fingerprint, "ratings": fingerprint["ratings"] + fingerprint["judgments"], "n_boot": n_boot,
                  "flagged": int(flagged.astype(bool).sum()), "error": "", "failed_at": None}
        _write_json(root / RECORD, record)  # the swap: readers now get the new folder
        # The build before stays: a reader who took its folder from the record just now may still read it.
        _prune(root, {name, previous.record.get("folder") if previous else name})
        return Build(study.name, record)
    finally:
        _release(root, token)


def rater_key(label: str) -> str:
    """A rater's label as ``raters.csv`` stores it (text cells escaped against formulas)."""
    return escape_csv_cell(label)
