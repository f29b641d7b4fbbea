"""The worker table of a crowd study: one row per rater, as :mod:`analysis.crowd_decisions` reads it.

Every figure comes from what the study stored, by the rule that already decides it elsewhere:

- the state from ``Session.state`` (complete, expired, screened_out; ``in progress`` for a session
  under way, ``not started`` before consent) and, for an ended session, its ``end_reason``;
- gold items, gold misses, the median response time and the statistical flags from the study's
  screening (:func:`analysis.screening.rater_report` with the report's ``DEFAULT_RULES`` for 1-5
  studies, :func:`analysis.pairwise_screening.pairwise_rater_report` for paired ones) on the frame
  the report reads (:mod:`ratings.export`), so a gold miss here is a gold miss in the report;
- the ``[attention]`` rules evaluated post hoc on each worker's answers in the order shown, by the
  same :class:`~ratings.worker_checks.AttentionRules` methods that end a session as answers arrive
  (a study with ``end_session = false`` only flags; the flag joins the screening's reasons);
- time spent from consent to completion, or to the end or the last answer of an unfinished session.

A crowd study may have ten thousand workers: the raters come in one aggregating query and the
answers in the export's chunked read, never a query per worker.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from django.db.models import Count, Q

from analysis.crowd_decisions import WORKER_COLUMNS
from analysis.pairwise_screening import PairwiseFlagRules, pairwise_rater_report
from analysis.screening import DEFAULT_RULES, rater_report

from .export import judgments_frame, ratings_frame
from .models import Rater, Session, SessionItem, Study
from .worker_checks import AttentionRules

__all__ = ["PLATFORM_ID_COLUMNS", "worker_table"]

#: The platform's own ids shown per worker, under the platform's names (the upload tools key on them).
PLATFORM_ID_COLUMNS = {"prolific": ("STUDY_ID", "SESSION_ID"), "mturk": ("assignmentId", "hitId"), "generic": ()}

_SCORED = {False: (SessionItem.Kind.TEST, SessionItem.Kind.REPEAT, SessionItem.Kind.GOLD),
           True: (SessionItem.Kind.PAIR, SessionItem.Kind.PAIR_GOLD)}
_UNDER_WAY = (Session.State.CALIBRATION, Session.State.RATING)
_STATE_WORDS = {Session.State.CONSENT: "not started", **{s: "in progress" for s in _UNDER_WAY}}


def worker_table(study: Study) -> pd.DataFrame:
    """One row per crowd worker of ``study`` (raters who came by open enrolment).

    Returns
    -------
    pandas.DataFrame
        ``rater_id`` (the label in the report's files), :data:`~analysis.crowd_decisions.WORKER_COLUMNS`
        (``worker_id`` as stored, with the platform's name in front), ``platform_worker_id`` (as the
        platform writes it), the platform's ids (:data:`PLATFORM_ID_COLUMNS`) and ``end_reason``.
    """
    crowd = study.crowd
    platform = crowd.platform if crowd else "generic"
    id_columns = PLATFORM_ID_COLUMNS[platform]
    raters = _rater_rows(study)
    # screened-out workers' answers too: their numbers are shown beside the screened_out decision
    answers = (judgments_frame(study, results_only=False) if study.is_paired
               else ratings_frame(study, results_only=False))
    screening = _screening(answers, study.is_paired).reindex(raters["rater_id"])
    attention = _attention(answers, study.attention, study.is_paired).reindex(raters["rater_id"]).fillna("")
    reasons = ["; ".join(r for r in pair if r) for pair in zip(screening["flag_reasons"].fillna(""), attention)]
    out = raters.assign(
        gold_n=screening["gold_n"].fillna(0).astype(int).to_numpy(),
        gold_misses=screening["gold_misses"].fillna(0).astype(int).to_numpy(),
        median_response_ms=screening["median_response_ms"].astype(float).to_numpy(),
        flagged=[bool(r) for r in reasons],
        flag_reasons=reasons,
        platform_worker_id=[_platform_worker_id(platform, w) for w in raters["worker_id"]],
        **{name: [ids.get(name, "") for ids in raters["platform_ids"]] for name in id_columns},
    )
    return out[["rater_id", *WORKER_COLUMNS, "platform_worker_id", *id_columns, "end_reason"]]


def _rater_rows(study: Study) -> pd.DataFrame:
    """The workers with their session's facts and answer count: one query for any number of them."""
    answers = "judgments" if study.is_paired else "ratings"
    counted = Count(answers, filter=Q(**{f"{answers}__item__kind__in": _SCORED[study.is_paired]}))
    rows = (Rater.objects.filter(study=study, source=Rater.Source.OPEN).order_by("label")
            .annotate(items_rated=counted)
            .values_list("label", "external_id", "platform_ids", "session__state", "session__started_at",
                         "session__completed_at", "session__ended_at", "session__last_active_at",
                         "session__planned_scored_items", "session__end_reason", "items_rated"))
    frame = pd.DataFrame.from_records(list(rows), columns=[
        "rater_id", "worker_id", "platform_ids", "session_state", "started", "completed", "ended", "last_active",
        "items_planned", "end_reason", "items_rated"])
    frame["state"] = [_STATE_WORDS.get(s, s or "not started") for s in frame["session_state"]]
    # Timestamps, object columns when empty or all null, become UTC times (NaT for none).
    times = {c: pd.to_datetime(frame[c], utc=True).astype("datetime64[us, UTC]")
             for c in ("started", "completed", "ended", "last_active")}
    stop = times["completed"].fillna(times["ended"]).fillna(times["last_active"])
    frame["time_spent_s"] = (stop - times["started"]).dt.total_seconds().astype(float)
    frame["items_planned"] = frame["items_planned"].fillna(0).astype(int)
    frame["items_rated"] = frame["items_rated"].astype(int)
    frame["end_reason"] = frame["end_reason"].fillna("")
    frame["platform_ids"] = [ids if isinstance(ids, dict) else {} for ids in frame["platform_ids"]]
    return frame


def _screening(answers: pd.DataFrame, paired: bool) -> pd.DataFrame:
    """Per rater label: gold_n, gold_misses, median_response_ms, flag_reasons (empty: no answers)."""
    columns = ["gold_n", "gold_misses", "median_response_ms", "flag_reasons"]
    if answers.empty:
        return pd.DataFrame(columns=columns, index=pd.Index([], name="rater_id"))
    if paired:
        report = pairwise_rater_report(answers, PairwiseFlagRules()).set_index("rater_id")
        report["median_response_ms"] = answers.groupby("rater_id")["response_ms"].median()
        return report[columns]
    report = rater_report(answers, DEFAULT_RULES).set_index("rater_id")
    report = report.rename(columns={"n_gold": "gold_n"})
    if "median_response_ms" not in report:
        report["median_response_ms"] = np.nan
    return report[columns]


def _attention(answers: pd.DataFrame, rules: AttentionRules | None, paired: bool) -> pd.Series:
    """Per rater label, the first ``[attention]`` rule their scored answers fail, in words ("": none).

    The answers are what the live check reads (``sessions._scored_answers``): test, repeat and gold
    items in the order shown, the score or the side chosen, and the stored response times."""
    if rules is None or answers.empty:
        return pd.Series(dtype=object)
    scored = answers.loc[answers["kind"].astype(str).isin(("test", "repeat", "gold"))].sort_values(
        ["rater_id", "position"], kind="stable")
    values = (np.where(scored["choice"] == scored["left"], "left", "right") if paired
              else scored["score"].to_numpy())
    times = [None if pd.isna(t) else int(t) for t in scored["response_ms"]]
    found = {}
    for rater, at in scored.groupby("rater_id", sort=False).indices.items():
        found[rater] = rules.problem([values[k] for k in at], [times[k] for k in at]) or ""
    return pd.Series(found, dtype=object)


def _platform_worker_id(platform: str, stored: str) -> str:
    """The id as the platform writes it: the stored one without ``<platform>:`` in front. Enrolment
    folds case; MTurk's worker ids are upper case, so they are given back so."""
    bare = stored.removeprefix(f"{platform}:")
    return bare.upper() if platform == "mturk" else bare
