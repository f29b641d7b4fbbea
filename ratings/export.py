"""A study's ratings and stimuli as the tidy frames :mod:`analysis` works on."""

from __future__ import annotations

import pandas as pd

from analysis.io import RATING_COLUMNS  # the one list of columns; values_list below follows its order

from .models import Rating, SessionItem, Stimulus, Study, StudyDataset

__all__ = ["ratings_frame", "stimuli_frame", "study_info", "RATING_COLUMNS"]


def ratings_frame(study: Study) -> pd.DataFrame:
    """One row per rating: test items, repeats (kind 'repeat') and gold items (kind 'gold')."""
    rows = (
        Rating.objects.filter(rater__study=study)
        .exclude(item__kind=SessionItem.Kind.CALIBRATION)
        .order_by("rater__label", "item__position")
        .values_list("rater__label", "stimulus__image__dataset__name", "stimulus__image__name",
                     "stimulus__condition__name", "score", "item__kind", "item__expected_score", "response_ms",
                     "created_at", "item__position")
    )
    frame = pd.DataFrame.from_records(list(rows), columns=list(RATING_COLUMNS))
    frame["score"] = frame["score"].astype(int)
    frame["expected_score"] = pd.to_numeric(frame["expected_score"]).astype(float)
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
        "assignment": study.assignment,
        "methods_provenance": conditions,
    }
