"""A study's ratings and stimuli as the tidy frames :mod:`analysis` works on."""

from __future__ import annotations

import numpy as np
import pandas as pd
from django.db import connection

from analysis.io import RATING_COLUMNS  # the one list of columns; ratings_frame returns them in its order

from .models import Judgment, Rating, Session, SessionItem, Stimulus, Study, StudyDataset

__all__ = ["judgments_frame", "ratings_frame", "stimuli_frame", "study_info", "RATING_COLUMNS"]

JUDGMENT_COLUMNS = ["rater_id", "dataset", "image", "method_a", "method_b", "choice", "kind", "expected_choice", "left",
                    "response_ms", "created_at", "position", "layout", "toggles"]
_JUDGED_KINDS = {SessionItem.Kind.PAIR: "test", SessionItem.Kind.PAIR_GOLD: "gold"}


_CHUNK_ROWS = 50_000


def _lookup(codes: np.ndarray, table: dict[int, tuple]) -> list[np.ndarray]:
    """Columns of ``table[code]`` for each code: object arrays that share the table's strings, so a
    million ratings of a thousand raters hold a thousand label strings, not a million."""
    keys = np.fromiter(table, dtype=np.int64, count=len(table))
    values = list(zip(*table.values())) if table else []
    at = pd.Index(keys).get_indexer(codes)
    return [np.asarray(column, dtype=object)[at] for column in values]


def _results_only(answers, results_only: bool):
    """The results keep out what screening put aside: the answers of screened-out sessions (kept in the
    database and in crowd_decisions, flagged, never in a MOS or a scale)."""
    return answers.exclude(item__session__state=Session.State.SCREENED_OUT) if results_only else answers


def ratings_frame(study: Study, *, max_rating_id: int | None = None, results_only: bool = True) -> pd.DataFrame:
    """One row per rating: test items, repeats (kind 'repeat') and gold items (kind 'gold'), in each
    rater's order (label, then item position), ratings above ``max_rating_id`` left out. Calibration
    and qualification training answers are never in it; screened-out sessions' ratings only when
    ``results_only`` is False (crowd_decisions shows those workers' numbers).

    Read in chunks of plain values from the database cursor (no model rows); raters and stimuli are
    joined in from small tables, so memory grows with the numbers of a rating, not its strings."""
    ratings = _results_only(Rating.objects.filter(rater__study=study).exclude(
        item__kind__in=[SessionItem.Kind.CALIBRATION, SessionItem.Kind.TRAINING]), results_only)
    if max_rating_id is not None:
        ratings = ratings.filter(pk__lte=max_rating_id)
    query = ratings.order_by("rater__label", "item__position").values_list(
        "rater_id", "stimulus_id", "score", "item__kind", "item__expected_score", "response_ms", "created_at",
        "item__position")
    sql, params = query.query.sql_with_params()
    chunks = []
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(_CHUNK_ROWS):
            part = pd.DataFrame.from_records(rows, columns=["rater", "stimulus", "score", "kind", "expected_score",
                                                            "response_ms", "created_at", "position"])
            part["kind"] = part["kind"].astype("category")
            part["created_at"] = pd.to_datetime(part["created_at"], utc=True, format="ISO8601")
            for col in ("expected_score", "response_ms"):
                part[col] = pd.to_numeric(part[col]).astype(float)
            chunks.append(part)
    if not chunks:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in RATING_COLUMNS})
    raw = pd.concat(chunks, ignore_index=True)
    del chunks
    labels = dict(study.raters.values_list("pk", "label"))
    stimuli = {pk: rest for pk, *rest in Stimulus.objects.filter(study=study).values_list(
        "pk", "image__dataset__name", "image__name", "condition__name")}
    [rater_id] = _lookup(raw["rater"].to_numpy(), {pk: (label,) for pk, label in labels.items()})
    dataset, image, method = _lookup(raw["stimulus"].to_numpy(), stimuli)
    frame = pd.DataFrame({
        "rater_id": rater_id, "dataset": dataset, "image": image, "method": method,
        "score": raw["score"].astype(int), "kind": raw["kind"].astype(str),
        "expected_score": raw["expected_score"], "response_ms": raw["response_ms"],
        "created_at": raw["created_at"], "position": raw["position"].astype(int),
    })
    return frame[list(RATING_COLUMNS)]


def judgments_frame(study: Study, *, max_judgment_id: int | None = None, results_only: bool = True) -> pd.DataFrame:
    """One row per paired judgment (practice pairs left out) in the tidy format of
    :mod:`analysis.pairwise`: ``method_a`` is the method shown on the left, ``method_b`` on the
    right, ``choice`` the one chosen; gold pairs have ``kind`` 'gold' and their ``expected_choice``.
    Screened-out sessions' judgments as in :func:`ratings_frame`."""
    judgments = _results_only(Judgment.objects.filter(rater__study=study, item__kind__in=list(_JUDGED_KINDS)),
                              results_only)
    if max_judgment_id is not None:
        judgments = judgments.filter(pk__lte=max_judgment_id)
    rows = judgments.order_by("rater__label", "item__position").values_list(
        "rater__label", "item__stimulus__image__dataset__name", "item__stimulus__image__name",
        "item__stimulus__condition__name", "item__right_stimulus__condition__name", "side", "item__kind",
        "item__expected_side", "response_ms", "created_at", "item__position", "layout", "toggles")
    out = []
    for label, dataset, image, left, right, side, kind, expected, ms, created, position, layout, toggles in rows.iterator(
            chunk_size=_CHUNK_ROWS):
        by_side = {SessionItem.Side.LEFT: left, SessionItem.Side.RIGHT: right}
        out.append((label, dataset, image, left, right, by_side[side], _JUDGED_KINDS[kind], by_side.get(expected),
                    left, ms, created, position, layout, toggles))
    frame = pd.DataFrame.from_records(out, columns=JUDGMENT_COLUMNS)
    frame["response_ms"] = pd.to_numeric(frame["response_ms"]).astype(float)
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
    return frame


def stimuli_frame(study: Study) -> pd.DataFrame:
    """One row per rated stimulus (test datasets): metrics, hash and file."""
    rows = (
        Stimulus.objects.filter(study=study, image__dataset__role=StudyDataset.Role.TEST)
        .order_by("image__dataset__position", "condition__position", "image__name")
        .values_list("image__dataset__name", "image__name", "condition__name", "psnr_y", "ssim_y", "lpips",
                     "dists", "niqe", "sha256", "file", "state")
    )
    frame = pd.DataFrame.from_records(
        list(rows),
        columns=["dataset", "image", "method", "psnr_y", "ssim_y", "lpips", "dists", "niqe", "sha256", "file", "state"],
    )
    for col in ("psnr_y", "ssim_y", "lpips", "dists", "niqe"):
        frame[col] = pd.to_numeric(frame[col]).astype(float)
    for col in ("lpips", "dists", "niqe"):  # not computed (SR_COMPUTE_LPIPS=0): no column
        if frame[col].isna().all():
            frame = frame.drop(columns=[col])
    return frame


def study_info(study: Study) -> dict:
    """What the report prints for reproducibility."""
    conditions = {c.name: c.provenance for c in study.conditions.all()}
    return {
        "name": study.name,
        "title": study.title,
        "seed": study.seed,
        "config_text": study.config_text,
        "config_sha256": study.config_sha256,
        "created_at": study.created_at.isoformat(),
        "raters": study.raters.count(),
        **({"protocol": study.protocol, "design": study.pairwise.design, "question": study.pairwise.question,
            "reference": study.pairwise.reference} if study.is_paired else {"assignment": study.assignment}),
        "methods_provenance": conditions,
    }
