"""Reading and writing paired-comparison judgments in the platform's tidy CSV format.

One record per judgment: ``rater,dataset,image,method_a,method_b,choice`` (``choice`` is the
preferred method's name), optionally ``kind, expected_choice, left, response_ms, created_at,
position``. The header tells a judgments file from a ratings file (:func:`is_judgments_header`), so
``import_ratings`` takes either. Errors are collected for the whole file and raised together, by
line number, with :class:`analysis.io.RatingsFileError`, as for ratings.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable

import numpy as np
import pandas as pd

from analysis.io import _ISO_DATE, MAX_RESPONSE_MS, LineError, RatingsFileError, _open_text  # one date rule

REQUIRED = ("rater", "dataset", "image", "method_a", "method_b", "choice")
OPTIONAL = ("kind", "expected_choice", "left", "response_ms", "created_at", "position")
KINDS = ("test", "gold")
_POSITIVE_INT = re.compile(r"^\+?\d+$")

__all__ = ["KINDS", "OPTIONAL", "REQUIRED", "is_judgments_header", "judgments_csv_frame", "read_judgments_csv"]


def is_judgments_header(fields: Iterable[str]) -> bool:
    """True when a CSV header names the judgment columns (``method_a``, ``method_b``, ``choice``)."""
    names = {f.strip() for f in fields}
    return {"method_a", "method_b", "choice"} <= names


def _check_header(header: list[str]) -> list[LineError]:
    errors = []
    seen = set()
    for name in header:
        if name in seen:
            errors.append(LineError(1, f"column {name!r} appears twice"))
        seen.add(name)
        if name not in REQUIRED and name not in OPTIONAL:
            errors.append(LineError(1, f"unknown column {name!r} (judgment columns: {', '.join(REQUIRED + OPTIONAL)})"))
    for name in REQUIRED:
        if name not in seen:
            errors.append(LineError(1, f"missing column {name!r}"))
    return errors


def _record_errors(line: int, rec: dict) -> list[LineError]:
    out = []
    for name in REQUIRED:
        if not rec[name]:
            out.append(LineError(line, f"{name} is empty"))
    a, b, choice = rec["method_a"], rec["method_b"], rec["choice"]
    if a and b and a == b:
        out.append(LineError(line, f"method_a and method_b are both {a!r}: a judgment compares two methods"))
    if choice and a and b and choice not in (a, b):
        out.append(LineError(line, f"choice {choice!r} is neither method_a {a!r} nor method_b {b!r}"))
    kind = rec.get("kind") or "test"
    if kind not in KINDS:
        out.append(LineError(line, f"kind {kind!r} is not one of {', '.join(KINDS)}"))
    expected = rec.get("expected_choice") or ""
    if kind == "gold" and expected not in (a, b):
        out.append(LineError(line, f"a gold judgment needs expected_choice, one of {a!r} and {b!r}"))
    left = rec.get("left") or ""
    if left and left not in (a, b):
        out.append(LineError(line, f"left {left!r} is neither method_a nor method_b"))
    ms = rec.get("response_ms") or ""
    if ms:
        try:
            value = float(ms)
            if not np.isfinite(value) or value < 0:
                raise ValueError
        except ValueError:
            out.append(LineError(line, f"response_ms {ms!r} is not a non-negative number"))
    created = rec.get("created_at") or ""
    if created and not _ISO_DATE.match(created):
        out.append(LineError(line, f"created_at {created!r} is not an ISO 8601 timestamp"))
    position = rec.get("position") or ""
    if position and (not _POSITIVE_INT.match(position) or int(position) < 1):
        out.append(LineError(line, f"position {position!r} is not a positive integer"))
    return out


def read_judgments_csv(source) -> pd.DataFrame:
    """Read and validate a judgments CSV; raise one :class:`RatingsFileError` listing every problem.

    Returns ``rater_id, dataset, image, method_a, method_b, choice, kind`` (empty kind = "test"),
    the optional columns present, and ``line``. Response times above an hour become NaN (as for
    ratings: a rater who left). A rater's ``position`` may appear once: a repeated position is a
    replayed record.
    """
    handle, name, owned = _open_text(source)
    try:
        reader = csv.reader(handle)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise RatingsFileError(name, [LineError(1, "the file is empty (no header)")]) from None
        errors = _check_header(header)
        if errors:
            raise RatingsFileError(name, errors)
        records, lines = [], []
        seen_positions: dict[tuple[str, str], int] = {}
        line = 1
        for fields in reader:
            line = reader.line_num - (sum(f.count("\n") for f in fields))  # first line of the record
            if not fields or all(not f.strip() for f in fields):
                continue
            if len(fields) != len(header):
                errors.append(LineError(line, f"{len(fields)} fields, the header has {len(header)}"))
                continue
            rec = {h: f.strip() for h, f in zip(header, fields, strict=True)}
            for opt in OPTIONAL:
                rec.setdefault(opt, "")
            errors.extend(_record_errors(line, rec))
            if rec["position"]:
                key = (rec["rater"], rec["position"])
                if key in seen_positions:
                    errors.append(LineError(line, f"rater {rec['rater']!r} position {rec['position']} repeats "
                                                  f"line {seen_positions[key]}"))
                else:
                    seen_positions[key] = line
            records.append(rec)
            lines.append(line)
        if errors:
            raise RatingsFileError(name, errors)
        if not records:
            raise RatingsFileError(name, [LineError(1, "no judgments after the header")])
    finally:
        if owned:
            handle.close()
    frame = pd.DataFrame(records)
    frame = frame.rename(columns={"rater": "rater_id"})
    frame["kind"] = frame["kind"].replace("", "test")
    keep = ["rater_id", "dataset", "image", "method_a", "method_b", "choice", "kind"]
    keep += [c for c in OPTIONAL if c != "kind" and c in header]
    frame = frame[keep].copy()
    if "response_ms" in frame:
        ms = pd.to_numeric(frame["response_ms"].replace("", np.nan))
        frame["response_ms"] = ms.where(ms <= MAX_RESPONSE_MS)
    if "position" in frame:
        frame["position"] = pd.to_numeric(frame["position"].replace("", np.nan)).astype("Int64")
    if "created_at" in frame:
        frame["created_at"] = pd.to_datetime(frame["created_at"].replace("", None), utc=True, format="ISO8601")
    for col in ("expected_choice", "left"):
        if col in frame:
            frame[col] = frame[col].replace("", None)
    frame["line"] = lines
    return frame


def judgments_csv_frame(judgments: pd.DataFrame) -> pd.DataFrame:
    """The export form of a judgments frame: the file's column names and order (what
    :func:`read_judgments_csv` reads back to the same frame)."""
    out = judgments.rename(columns={"rater_id": "rater"})
    cols = [c for c in REQUIRED + OPTIONAL if c in out.columns]
    return out[cols]
