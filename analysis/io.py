"""Reading the tidy ratings CSV that ``import_ratings`` takes, and the SUREAL dataset-file format.

This module reads and formats; it writes no file (:mod:`analysis.report` does).

The CSV format, one rating per record::

    rater,dataset,image,method,score[,created_at][,kind][,expected_score][,response_ms][,position]

References
----------
1. Li, Z. et al. SUREAL: Subjective Recovery Analysis (Netflix), dataset files
   (``dataset_name``, ``ref_videos``, ``dis_videos`` with per-subject ``os`` dicts).
2. RFC 4180 (2005). Common Format and MIME Type for Comma-Separated Values (CSV) Files.
"""

from __future__ import annotations

import csv
import io as _io
import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis._frames import (
    KINDS,
    RATING_COLUMNS,
    REQUIRED_RATING_COLUMNS,
    STIMULUS_KEY,
    kind_rows,
    require_columns,
    test_rows,
)

__all__ = [
    "MAX_RESPONSE_MS",
    "RATING_COLUMNS",
    "RatingsFileError",
    "RatingsFileWarning",
    "RatingsScan",
    "ratings_csv_frame",
    "read_ratings_csv",
    "sureal_dataset_text",
    "validated_chunks",
]

REQUIRED = ("rater", "dataset", "image", "method", "score")
OPTIONAL = ("created_at", "kind", "expected_score", "response_ms", "position")
_INT = re.compile(r"^[+-]?\d+$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]|$)")
# A response time above an hour is a rater who left and came back, not time spent judging the image:
# kept, it would dominate every mean and spread of response times, so it counts as missing.
MAX_RESPONSE_MS = 3_600_000


@dataclass(frozen=True)
class LineError:
    """One problem of a ratings file: 1-based line number (header = 1) and the reason."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


class RatingsFileWarning(UserWarning):
    """A ratings file that was read, with values set aside (e.g. response times above an hour)."""


class RatingsFileError(ValueError):
    """A ratings file with problems; ``errors`` lists every one, by line number.

    The message names the file and lists each problem on its own line, so a researcher can fix the
    whole file in one pass.
    """

    def __init__(self, source: str, errors: list[LineError]):
        self.source = source
        self.errors = sorted(errors, key=lambda e: e.line)
        lines = "\n".join(f"  {e}" for e in self.errors)
        super().__init__(f"{source}: {len(self.errors)} problem(s)\n{lines}")


def _source_name(source) -> str:
    return os.fspath(source) if isinstance(source, (str, os.PathLike)) else getattr(source, "name", "<ratings>")


def _open_text(source) -> tuple[_io.TextIOBase, str, bool]:
    if isinstance(source, (str, os.PathLike)):
        # utf-8-sig: a byte-order mark written by spreadsheet programs is not part of the header.
        return open(source, newline="", encoding="utf-8-sig"), _source_name(source), True
    return source, _source_name(source), False


def read_ratings_csv(source) -> pd.DataFrame:
    """Read and validate a tidy ratings CSV; raise one error listing every malformed record.

    Parameters
    ----------
    source : path or text file object
        The CSV. Fields are trimmed of surrounding whitespace; quoted fields may span lines.

    Returns
    -------
    pandas.DataFrame
        ``rater_id, dataset, image, method, score`` (int), plus those of ``created_at``
        (UTC timestamps), ``kind``, ``expected_score``, ``response_ms`` and ``position`` present in
        the header, plus ``line`` (the record's line number), in file order.
        ``frame.attrs["response_ms_dropped"]`` counts the response times set to NaN (see Notes).

    Raises
    ------
    RatingsFileError
        Listing every problem with its 1-based line number in the file (the header is line 1; a
        record that spans lines is reported at its first line).

    Notes
    -----
    Rules:

    * The header must name ``rater, dataset, image, method, score``; the optional columns are
      ``created_at, kind, expected_score, response_ms, position``. Any other column, a repeated
      column or a missing required column is an error on line 1 (a misspelt optional column would
      otherwise be dropped silently). Without a usable header no record is checked.
    * Every record has as many fields as the header; required fields are non-empty.
    * ``score`` is an integer from 1 to 5 written without a decimal point ("4", not "4.0").
    * ``kind`` is empty (meaning "test") or one of ``test, repeat, gold, training`` (training:
      qualification answers, read and kept out of every MOS). A gold record needs an integer
      ``expected_score`` from 1 to 5; other records may leave it empty.
    * ``created_at`` is empty or an ISO 8601 timestamp (naive times are taken as UTC);
      ``response_ms`` is empty or a non-negative number; ``position`` is empty or a positive integer.
      A ``response_ms`` above ``MAX_RESPONSE_MS`` (one hour) becomes NaN, with one
      ``RatingsFileWarning`` giving the count and the lines.
    * Duplicates: a rater may have at most one record of each kind per (dataset, image, method).
      A second presentation of a test item must be marked ``kind = repeat`` and needs the
      corresponding test record; anything else is reported as a duplicate of the earlier line.

    The file is read through :func:`validated_chunks` (the one validator), whole here since the
    frame is the result; :mod:`ratings.importing` streams it instead.
    """
    scan = RatingsScan(source)
    frames = list(validated_chunks(scan))
    scan.check()
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0].reset_index(drop=True)
    frame.attrs["response_ms_dropped"] = scan.response_ms_dropped
    return frame


# Records validated and typed per frame: bounds what the streaming reader holds beside the compact
# codes of the cross-row checks, whatever the file's length.
CHUNK_ROWS = 20_000


class RatingsScan:
    """One reading of a ratings file, and what its cross-row checks need, held compactly.

    :func:`validated_chunks` fills it; :meth:`check` then runs the checks that span records
    (duplicates, repeats without their test record) and raises one :class:`RatingsFileError` with
    every problem of the file. Per record only integer codes are kept (rater, stimulus, kind and
    line: 20 bytes), never its strings; the strings are held once per rater and per
    (dataset, image, method).

    Attributes
    ----------
    name : str
        The file's name, for messages.
    raters, stimuli : dict
        Rater label -> code and (dataset, image, method) -> code, in order of first appearance.
    records : int
        Valid records yielded so far.
    response_ms_dropped : int
        Response times above ``MAX_RESPONSE_MS`` set to missing.
    """

    def __init__(self, source):
        self.source = source
        self.name = _source_name(source)
        self.errors: list[LineError] = []
        self.raters: dict[str, int] = {}
        self.stimuli: dict[tuple[str, str, str], int] = {}
        self.kinds: dict[str, int] = {k: i for i, k in enumerate(KINDS)}
        self.records = 0
        self.response_ms_dropped = 0
        self._too_long_shown: list[int] = []
        self._codes: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []  # per chunk
        self._checked = False

    def _add_codes(self, raters: list[int], stimuli: list[int], kinds: list[int], lines: list[int]) -> None:
        if lines:
            self._codes.append((np.asarray(raters, np.int32), np.asarray(stimuli, np.int32),
                                np.asarray(kinds, np.int32), np.asarray(lines, np.int64)))

    def _cross_row_errors(self) -> tuple[list[LineError], list[LineError]]:
        """(duplicates, repeats without a test record), each a list of line errors."""
        if not self._codes:
            return [], []
        rater, stim, kind, line = (np.concatenate(part) for part in zip(*self._codes))
        # Lines only grow through the file, so within one (rater, stimulus, kind) the first in this
        # order is the first in the file: the original, every later one a duplicate of it.
        order = np.lexsort((line, kind, stim, rater))
        r, s, k, ln = rater[order], stim[order], kind[order], line[order]
        first = np.ones(len(order), bool)
        first[1:] = (r[1:] != r[:-1]) | (s[1:] != s[:-1]) | (k[1:] != k[:-1])
        original = ln[np.maximum.accumulate(np.where(first, np.arange(len(order)), 0))]
        labels, keys, kinds = list(self.raters), list(self.stimuli), list(self.kinds)
        errors = []
        for i in np.flatnonzero(~first):
            d, im, m = keys[s[i]]
            errors.append(LineError(int(ln[i]), (
                f"duplicate {kinds[k[i]]} rating of rater {labels[r[i]]!r} for {d}/{im}/{m} "
                f"(first on line {int(original[i])}); mark a second presentation kind=repeat")))
        # A repeat needs a test record of the same rater and stimulus (anywhere in the file).
        pair = (r.astype(np.int64) << 32) | s.astype(np.int64)
        tests = pair[first & (k == self.kinds["test"])]
        lonely = np.flatnonzero(first & (k == self.kinds["repeat"]) & ~np.isin(pair, tests))
        repeats = [LineError(int(ln[i]), "repeat of {}/{}/{} by rater {!r} has no test record".format(
            *keys[s[i]], labels[r[i]])) for i in lonely]
        return errors, repeats

    def check(self, stacklevel: int = 2) -> None:
        """Run the cross-row checks; raise every problem of the file, or warn of dropped times.

        Call once, after :func:`validated_chunks` has been read to its end.
        """
        if not self._checked:
            self._checked = True
            duplicates, repeats = self._cross_row_errors()
            # A duplicate is one more problem of its line, written after the line's others.
            index = {e.line: i for i, e in enumerate(self.errors)} if duplicates else {}
            for dup in duplicates:
                if dup.line in index:
                    i = index[dup.line]
                    self.errors[i] = LineError(dup.line, f"{self.errors[i].reason}; {dup.reason}")
                else:
                    self.errors.append(dup)
            self.errors.extend(repeats)
            self._codes = []
        if self.errors:
            raise RatingsFileError(self.name, self.errors)
        if self.response_ms_dropped:
            shown = ", ".join(map(str, self._too_long_shown)) + (", ..." if self.response_ms_dropped > 10 else "")
            warnings.warn(
                f"{self.name}: {self.response_ms_dropped} response_ms value(s) above {MAX_RESPONSE_MS} ms (one hour) "
                f"treated as missing (line(s) {shown})",
                RatingsFileWarning,
                stacklevel=stacklevel + 1,
            )


def validated_chunks(scan: RatingsScan, chunk_rows: int = CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """Read ``scan.source`` record by record; yield its valid records, typed, at most ``chunk_rows`` a frame.

    The rules are those of :func:`read_ratings_csv`. A problem of the header raises
    :class:`RatingsFileError` at once (no record can be checked without it); a problem of a record is
    kept in ``scan.errors`` and the record is not yielded; the checks across records run in
    ``scan.check()``, which must follow before anything read here is trusted. Every frame, even
    the first of a file without records, has the columns of :func:`read_ratings_csv`.
    """
    handle, name, close = _open_text(scan.source)
    try:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise RatingsFileError(name, [LineError(1, "empty file: no header")]) from None
        header = [h.strip() for h in header]
        _check_header(name, header)
        yielded = False
        records, lines = [], []
        line_after = reader.line_num  # last physical line consumed so far
        for fields in reader:
            start = line_after + 1
            line_after = reader.line_num
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue  # blank line
            if len(fields) != len(header):
                scan.errors.append(LineError(start, f"expected {len(header)} fields, found {len(fields)}"))
                continue
            records.append(dict(zip(header, (f.strip() for f in fields))))
            lines.append(start)
            if len(records) == chunk_rows:
                yield _validated_frame(scan, records, lines, header)
                yielded = True
                records, lines = [], []
        if records or not yielded:
            yield _validated_frame(scan, records, lines, header)
    finally:
        if close:
            handle.close()


def _check_header(name: str, header: list[str]) -> None:
    errors = []
    allowed = set(REQUIRED) | set(OPTIONAL)
    missing = [c for c in REQUIRED if c not in header]
    unknown = [c for c in header if c not in allowed]
    repeated = sorted({c for c in header if header.count(c) > 1})
    if missing:
        errors.append(LineError(1, f"header lacks required column(s) {', '.join(missing)}"))
    if unknown:
        errors.append(
            LineError(
                1, f"unknown column(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(REQUIRED + OPTIONAL)}"
            )
        )
    if repeated:
        errors.append(LineError(1, f"repeated column(s) {', '.join(repeated)}"))
    if errors:
        raise RatingsFileError(name, errors)


def _validated_frame(scan: RatingsScan, records: list[dict], lines: list[int], header: list[str]) -> pd.DataFrame:
    """The per-record rules on one chunk: problems to ``scan.errors``, codes for the cross-row checks."""
    rows = []
    codes: tuple[list[int], list[int], list[int], list[int]] = ([], [], [], [])
    for rec, line in zip(records, lines):
        problems = []
        empty = [c for c in REQUIRED if rec[c] == ""]
        if empty:
            problems.append(f"empty field(s) {', '.join(empty)}")
        score = rec["score"]
        if score != "" and (not _INT.match(score) or not 1 <= int(score) <= 5):
            problems.append(f"score {score!r} is not an integer from 1 to 5")
        kind = rec.get("kind", "") or "test"
        if kind not in KINDS:
            problems.append(f"kind {rec['kind']!r} is not one of {', '.join(KINDS)}")
        expected = rec.get("expected_score", "")
        if expected != "" and (not _INT.match(expected) or not 1 <= int(expected) <= 5):
            problems.append(f"expected_score {expected!r} is not an integer from 1 to 5")
        elif kind == "gold" and expected == "":
            problems.append("gold record without expected_score")
        created = rec.get("created_at", "")
        if created:
            # pandas alone would also accept words such as "now" or "today"; require an ISO date first.
            try:
                ok = bool(_ISO_DATE.match(created)) and pd.notna(pd.Timestamp(created))
            except (ValueError, TypeError):
                ok = False
            if not ok:
                problems.append(f"created_at {created!r} is not an ISO 8601 timestamp")
        response = rec.get("response_ms", "")
        if response:
            try:
                ok = float(response) >= 0 and np.isfinite(float(response))
            except ValueError:
                ok = False
            if not ok:
                problems.append(f"response_ms {response!r} is not a non-negative number")
            elif float(response) > MAX_RESPONSE_MS:
                rec["response_ms"] = ""
                scan.response_ms_dropped += 1
                if len(scan._too_long_shown) < 10:
                    scan._too_long_shown.append(line)
        position = rec.get("position", "")
        if position and (not _INT.match(position) or int(position) < 1):
            problems.append(f"position {position!r} is not a positive integer")
        if not empty:
            # Duplicates are found across the whole file in scan.check(), from these codes.
            codes[0].append(scan.raters.setdefault(rec["rater"], len(scan.raters)))
            codes[1].append(scan.stimuli.setdefault((rec["dataset"], rec["image"], rec["method"]), len(scan.stimuli)))
            codes[2].append(scan.kinds.setdefault(kind, len(scan.kinds)))
            codes[3].append(line)
        if problems:
            scan.errors.append(LineError(line, "; ".join(problems)))
        else:
            rows.append({**rec, "line": line})
    scan._add_codes(*codes)
    scan.records += len(rows)
    return _typed_frame(rows, header)


def _typed_frame(rows: list[dict], header: list[str]) -> pd.DataFrame:
    columns = ["rater", "dataset", "image", "method", "score", *[c for c in OPTIONAL if c in header], "line"]
    frame = pd.DataFrame(rows, columns=columns).rename(columns={"rater": "rater_id"})
    for col in ("rater_id", "dataset", "image", "method"):
        frame[col] = frame[col].astype(str)
    frame["score"] = frame["score"].astype(int)
    if "created_at" in frame.columns:
        frame["created_at"] = pd.to_datetime(frame["created_at"].replace("", None), utc=True, format="ISO8601")
    if "kind" in frame.columns:
        frame["kind"] = frame["kind"].replace("", "test").astype(str)
    if "expected_score" in frame.columns:
        frame["expected_score"] = pd.to_numeric(frame["expected_score"].replace("", None)).astype(float)
    if "response_ms" in frame.columns:
        frame["response_ms"] = pd.to_numeric(frame["response_ms"].replace("", None)).astype(float)
    if "position" in frame.columns:
        frame["position"] = pd.to_numeric(frame["position"].replace("", None)).astype("Int64")
    return frame.reset_index(drop=True)


def ratings_csv_frame(ratings: pd.DataFrame) -> pd.DataFrame:
    """The ratings in the CSV layout that :func:`read_ratings_csv` reads back.

    Returns ``rater, dataset, image, method, score`` plus ``created_at`` (ISO 8601, UTC) when the
    frame has it with any known value, and ``kind`` / ``expected_score`` when there are repeat or
    gold rows, so that a written file round-trips. Rows without a score are left out.
    """
    require_columns(ratings, REQUIRED_RATING_COLUMNS)
    ratings = ratings.loc[pd.to_numeric(ratings["score"]).notna()]  # a row without a score is no rating
    out = ratings[list(REQUIRED_RATING_COLUMNS)].rename(columns={"rater_id": "rater"}).copy()
    out["score"] = pd.to_numeric(out["score"]).astype(int)
    if "created_at" in ratings.columns and ratings["created_at"].notna().any():
        stamps = pd.to_datetime(ratings["created_at"], utc=True)
        out["created_at"] = stamps.dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ").where(stamps.notna(), "")
    if "kind" in ratings.columns and (ratings["kind"].astype(str) != "test").any():
        out["kind"] = ratings["kind"].astype(str)
        if "expected_score" in ratings.columns:
            exp = pd.to_numeric(ratings["expected_score"], errors="coerce")
            whole = exp.fillna(0).astype(np.int64).astype(str)  # str(int(v)): no ".0"
            out["expected_score"] = whole.where(exp.notna(), "")
    return out.reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# SUREAL dataset file
# --------------------------------------------------------------------------------------------


class _Rendered(str):
    """Text already written as a literal by :func:`_py_literal`'s rules, inserted as it is."""


def _py_literal(value, indent: int = 0) -> str:
    """Deterministic Python literal (dicts keep insertion order)."""
    kind = type(value)
    if kind is str or kind is int:  # most values: no isinstance chain
        return repr(value)
    if kind is _Rendered:
        return str(value)
    if isinstance(value, dict):  # str and int values inline: a crowd study writes 10^6 of them
        items = ", ".join(f"{k!r}: {repr(v) if type(v) is str or type(v) is int else _py_literal(v, indent)}"
                          for k, v in value.items())
        return "{" + items + "}"
    pad = " " * indent
    if isinstance(value, list):
        if not value:
            return "[]"
        inner = ",\n".join(pad + "    " + _py_literal(v, indent + 4) for v in value)
        return "[\n" + inner + ",\n" + pad + "]"
    if isinstance(value, (np.integer,)):
        return repr(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return repr(int(v)) if v.is_integer() else repr(v)
    return repr(value)


def _run_starts(*codes: np.ndarray) -> np.ndarray:
    """Where a new run of equal ``codes`` tuples starts in sorted rows (the first row always does)."""
    starts = np.zeros(len(codes[0]), dtype=bool)
    starts[:1] = True
    for code in codes:
        starts[1:] |= code[1:] != code[:-1]
    return starts


def sureal_dataset_text(
    ratings: pd.DataFrame,
    stimuli: pd.DataFrame | None = None,
    dataset_name: str = "mos_study",
    include_repeats: bool = True,
    reference_method: str = "hr",
) -> str:
    """The ratings as a SUREAL dataset file (Python source), for cross-checking with SUREAL.

    Parameters
    ----------
    ratings : pandas.DataFrame
        Long ratings frame. Test rows (and repeat rows when ``include_repeats``) are exported; gold
        rows are not part of the study.
    stimuli : pandas.DataFrame, optional
        Stimulus table; its ``file`` column gives the ``path`` entries.
    dataset_name : str
        Value of ``dataset_name``.
    include_repeats : bool
        Export a repeated item's scores as a list ``[first, second]`` (SUREAL's form for repeated
        scores); otherwise only the first presentation.
    reference_method : str
        Method whose file is the reference (``ref_videos`` path) of each image.

    Returns
    -------
    str
        Python source defining ``dataset_name``, ``ref_videos`` (one per (dataset, image), with
        ``content_id`` 0..C-1 and ``content_name`` "dataset/image") and ``dis_videos`` (one per
        rated (dataset, image, method), with ``content_id``, ``asset_id`` 0..A-1, ``os`` =
        ``{rater_id: score}`` and, as extra keys SUREAL ignores, ``dataset``, ``image`` and
        ``method``). Load it with ``sureal.dataset_reader.RawDatasetReader`` via SUREAL's
        ``import_python_file``.
    """
    data = test_rows(ratings)
    keys = list(STIMULUS_KEY)
    if include_repeats and "kind" in ratings.columns:
        rep = kind_rows(ratings, "repeat")
        data = pd.concat([data.assign(_order=0), rep.assign(_order=1)], ignore_index=True)
    else:
        data = data.assign(_order=0)
    files = {}
    if stimuli is not None and "file" in stimuli.columns:
        # Plain lists: iterating pandas' string arrays item by item costs more than the rest here.
        files = dict(zip(zip(*(stimuli[k].tolist() for k in keys)), stimuli["file"].tolist()))

    # Rows in (dataset, image, method, rater, first/repeat) order, sorted on integer codes (what
    # a stable multi-column sort_values does, without re-factorizing the strings for each step).
    uniques, codes = [], []
    for column in [*keys, "rater_id"]:
        code, unique = pd.factorize(data[column], sort=True)
        codes.append(code)
        uniques.append(unique.tolist())
    order = np.lexsort([data["_order"].to_numpy(), *codes[::-1]])
    d, i, m, r = (code[order] for code in codes)
    n = len(order)
    new_content = _run_starts(d, i)
    new_asset = _run_starts(d, i, m)
    new_run = np.flatnonzero(_run_starts(d, i, m, r))
    datasets, images, methods, raters = uniques

    ref_videos = []
    for cid, row in enumerate(np.flatnonzero(new_content)):
        dataset, image = datasets[d[row]], images[i[row]]
        path = files.get((dataset, image, reference_method), f"{dataset}/{image}/{reference_method}")
        ref_videos.append({"content_id": cid, "content_name": f"{dataset}/{image}", "path": str(path)})

    # Each asset's ``os`` text is made here, one (asset, rater) run at a time (a rater's repeated
    # scores form a list); the 10^6 values of a crowd study would take most of the time as dicts.
    values = [int(v) if v.is_integer() else v for v in data["score"].to_numpy(dtype=float)[order].tolist()]
    rater_keys = [repr(str(rater)) + ": " for rater in raters]
    run_ends = np.r_[new_run[1:], n].tolist()
    entries = [rater_keys[rater] + (repr(values[start]) if end - start == 1 else _py_literal(values[start:end], 4))
               for rater, start, end in zip(r[new_run].tolist(), new_run.tolist(), run_ends)]
    asset_rows = np.flatnonzero(new_asset)
    asset_of_run = np.cumsum(new_asset)[new_run] - 1
    entry_bounds = np.searchsorted(asset_of_run, np.arange(len(asset_rows) + 1)).tolist()
    content_of_row = np.cumsum(new_content) - 1
    dis_videos = []
    for asset_id, row in enumerate(asset_rows.tolist()):
        dataset, image, method = datasets[d[row]], images[i[row]], methods[m[row]]
        os_text = "{" + ", ".join(entries[entry_bounds[asset_id]:entry_bounds[asset_id + 1]]) + "}"
        dis_videos.append(
            {
                "content_id": int(content_of_row[row]),
                "asset_id": asset_id,
                "os": _Rendered(os_text),
                "path": str(files.get((dataset, image, method), f"{dataset}/{image}/{method}")),
                "dataset": str(dataset),
                "image": str(image),
                "method": str(method),
            }
        )
    return (
        "# SUREAL dataset file written by analysis.io.sureal_dataset_text.\n"
        "# One content per (dataset, image); one distorted asset per rated (dataset, image, method).\n"
        f"dataset_name = {dataset_name!r}\n"
        f"ref_videos = {_py_literal(ref_videos)}\n"
        f"dis_videos = {_py_literal(dis_videos)}\n"
    )

