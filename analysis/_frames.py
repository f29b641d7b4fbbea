"""Small helpers shared by the analysis modules: column checks and the test-row filter.

The ratings interface (one row per rating) is documented in :mod:`analysis.stats`. One rule for
missing scores holds everywhere because every module reads ratings through :func:`test_rows` or
:func:`kind_rows`: a row whose score is missing (NaN, None, empty) is no rating and is dropped, so
it counts nowhere (not in ``n``, not in a rater's ``J``) and poisons nothing.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

#: The columns every ratings frame has (the ratings interface of :mod:`analysis.stats`).
REQUIRED_RATING_COLUMNS = ("rater_id", "dataset", "image", "method", "score")
#: Every column of a full ratings frame, in this order: the required ones, then those the analysis
#: reads when present (``kind``, ``expected_score``, ``response_ms``, ``created_at``) and the
#: item's place in its session. ``ratings.export.ratings_frame`` builds its frame with these.
RATING_COLUMNS = (*REQUIRED_RATING_COLUMNS, "kind", "expected_score", "response_ms", "created_at", "position")
STIMULUS_KEY = ("dataset", "image", "method")
#: The label columns of the ratings and stimuli frames: few distinct values, repeated on every row.
KEY_COLUMNS = ("rater_id", *STIMULUS_KEY, "kind")
KINDS = ("test", "repeat", "gold", "training")  # training: qualification answers, in no MOS


def require_columns(frame: pd.DataFrame, columns: Iterable[str], what: str = "ratings") -> None:
    """Raise ``ValueError`` naming every column of ``columns`` that ``frame`` lacks."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} frame lacks column(s) {missing}; it has {list(frame.columns)}")


def test_rows(ratings: pd.DataFrame) -> pd.DataFrame:
    """Rows that count towards MOS: ``kind == "test"``, or every row when there is no ``kind`` column.

    Always returns a copy whose ``score`` column is float, so callers may add columns freely. Rows
    without a score are dropped (the module's rule for missing scores).
    """
    require_columns(ratings, REQUIRED_RATING_COLUMNS)
    if "kind" in ratings.columns:
        test = ratings["kind"] == "test"
        out = ratings if test.all() else ratings.loc[test]
    else:
        out = ratings
    return _scored(out)


def kind_rows(ratings: pd.DataFrame, kind: str) -> pd.DataFrame:
    """Rows of one ``kind`` ("repeat" or "gold") that have a score; empty when the column is missing."""
    if "kind" not in ratings.columns:
        return ratings.iloc[0:0].copy()
    return _scored(ratings.loc[ratings["kind"] == kind])


def categorical_keys(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its :data:`KEY_COLUMNS` as categoricals whose categories are the values present,
    sorted: every groupby, factorize and comparison of a report build then works on small integer
    codes instead of hashing 10^6 strings (6 s of a 10^6-rating build), and sorts groups as the
    strings sort, so no result changes. A category order of the caller's own is not kept for that
    reason. The other columns are shared, not copied."""
    out = frame.copy(deep=False)
    for column in KEY_COLUMNS:
        if column not in out.columns:
            continue
        values = out[column]
        if isinstance(values.dtype, pd.CategoricalDtype):
            values = values.cat.remove_unused_categories()
            present = sorted(values.cat.categories)
            if list(values.cat.categories) != present:
                values = values.cat.reorder_categories(present)
            out[column] = values
        else:
            out[column] = values.astype("category")
    return out


def _scored(rows: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``rows`` with a float ``score``, rows without a score left out.

    A new frame, never ``rows`` itself; pandas' copy-on-write (always on from pandas 3) copies a
    column only when one of the two frames writes to it, so the many calls of a report build on
    10^6 ratings do not each copy every column."""
    score = pd.to_numeric(rows["score"], errors="raise").astype(float)
    keep = score.notna()
    out = rows if keep.all() else rows.loc[keep]
    return out.assign(score=score[keep])


def ordered(values: Iterable, order: Sequence | None) -> list:
    """Distinct ``values`` in ``order`` first (those present), then the rest sorted by name."""
    present = list(dict.fromkeys(values))
    if order is None:
        return sorted(present, key=str)
    present_set = set(present)
    head = list(dict.fromkeys(v for v in order if v in present_set))
    head_set = set(head)
    tail = sorted((v for v in present if v not in head_set), key=str)
    return head + tail


def percentile_interval(samples: np.ndarray, confidence: float, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Equal-tailed percentile interval of bootstrap ``samples`` along ``axis`` (NaN replicates ignored)."""
    alpha = 1.0 - confidence
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells give NaN bounds, by design
        lo = np.nanquantile(samples, alpha / 2.0, axis=axis)
        hi = np.nanquantile(samples, 1.0 - alpha / 2.0, axis=axis)
    return lo, hi


def level_label(confidence: float) -> str:
    """A confidence level as captions print it: 0.95 -> "95%", 0.9 -> "90%", 0.975 -> "97.5%"."""
    return f"{100 * confidence:.10g}%"


def gold_misses_allowed(n_gold, min_correct: float):
    """Gold items a rater may get wrong: ``max(1, floor((1 - min_correct) n))`` - one miss is always
    allowed (a slip among a handful of obvious items is what honest raters do). The one rule for
    ratings (``FlagRules``), paired judgments (``PairwiseFlagRules``) and payment (``PaymentRules``).

    Works on a number or an array of gold counts; the 1e-9 keeps 0.2 * 5 from flooring to 0.
    """
    return np.maximum(1, np.floor((1.0 - min_correct) * np.asarray(n_gold, float) + 1e-9)).astype(int)
