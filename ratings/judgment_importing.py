"""Importing paired judgments gathered elsewhere into a paired study: all or nothing.

The file is the judgments CSV ``rater,dataset,image,method_a,method_b,choice[,kind,expected_choice,
left,...]`` validated by :func:`analysis.judgments_io.read_judgments_csv`; ``import_ratings`` tells
it from a ratings file by its header (:func:`import_file`). A study that does not exist is created
as a ``pairwise`` study from what the file names, as :mod:`ratings.importing` does for ratings
(the stimuli of known datasets can be made and measured later). Each judgment becomes a pair item
(the method shown on the left - ``left``, else ``method_a`` - and the other on the right) and its
judgment. The file is read whole: judgment files of paired studies are far smaller than crowd
rating files (ratings stream, :func:`ratings.importing.import_ratings`).
"""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
from django.db import transaction
from django.utils import timezone

from analysis.io import LineError, RatingsFileError
from analysis.judgments_io import is_judgments_header, read_judgments_csv
from sr_models.inference import sha256_file

from .importing import ImportResult, _ImportPlan, _new_study, _stimuli_for, check_study_name, check_utf8, import_ratings
from .models import Judgment, Rater, Session, SessionItem, Study
from .pairwise_design import PairwiseDesign

__all__ = ["import_file", "import_judgments"]


def import_file(path: str | Path, study_name: str) -> ImportResult:
    """Ratings or judgments, by the file's header."""
    check_utf8(path)
    with open(path, newline="", encoding="utf-8-sig") as handle:
        header = next(csv.reader(handle), [])
    if is_judgments_header(header):
        return import_judgments(path, study_name)
    return import_ratings(path, study_name)


def _plan(frame: pd.DataFrame) -> _ImportPlan:
    """The stimuli and datasets the file names, as :mod:`ratings.importing` gathers them."""
    plan = _ImportPlan(has_position=False)
    gold = frame["kind"].eq("gold")
    for column in ("method_a", "method_b"):
        for dataset, image, method, line, is_gold in zip(frame["dataset"], frame["image"], frame[column],
                                                          frame["line"], gold, strict=True):
            plan.stimuli.setdefault((dataset, image, method), int(line))
            plan.datasets[dataset] = plan.datasets.get(dataset, True) and bool(is_gold)
    return plan


def import_judgments(path: str | Path, study_name: str) -> ImportResult:
    """Validate the whole file, then store every judgment in one transaction (or none).

    Raises ``StudyNameError`` for a bad study name and :class:`analysis.io.RatingsFileError`
    listing every problem by line (a malformed record, an unknown stimulus of an existing study, a
    study that is not paired, a rater label already in the study); nothing is stored then.
    """
    check_study_name(study_name)
    check_utf8(path)
    digest = sha256_file(path)
    frame = read_judgments_csv(path)
    plan = _plan(frame)
    with transaction.atomic():
        study = Study.objects.select_for_update().filter(name=study_name).first()
        created = study is None
        if created:
            study = _new_study(study_name, str(path), digest, plan)
            study.config = {**study.config, "protocol": "pairwise",
                            "pairwise": PairwiseDesign(protocol="pairwise", practice_pairs=0).to_json()}
            study.save(update_fields=["config"])
        elif not study.is_paired:
            raise RatingsFileError(str(path), [LineError(1, f"study {study.name!r} rates 1-5 ({study.protocol}); "
                                                            f"judgments go into a paired study")])
        stimuli, errors = _stimuli_for(study, plan, create=created)
        labels = dict.fromkeys(frame["rater_id"])
        taken = set(Rater.objects.filter(study=study, label__in=list(labels)).values_list("label", flat=True))
        first_line = frame.groupby("rater_id", sort=False)["line"].min()
        errors += [LineError(int(first_line[label]), f"rater {label!r} already has answers in study {study.name!r}; "
                                                     f"give the imported raters other names") for label in sorted(taken)]
        if errors:
            transaction.set_rollback(True)
            raise RatingsFileError(str(path), errors)
        now = timezone.now()
        items, judgments = [], []
        for label, rows in frame.groupby("rater_id", sort=False):
            rater = Rater.objects.create(study=study, label=label, source=Rater.Source.IMPORTED)
            session = Session.objects.create(rater=rater, state=Session.State.COMPLETE, position=len(rows),
                                             planned_scored_items=len(rows))
            if "position" in rows:
                rows = rows.sort_values("position", kind="stable", na_position="last")
            for position, r in enumerate(rows.itertuples(index=False)):
                left = r.left if isinstance(getattr(r, "left", None), str) else r.method_a
                right = r.method_b if left == r.method_a else r.method_a
                expected = getattr(r, "expected_choice", None)
                side_of = {left: SessionItem.Side.LEFT, right: SessionItem.Side.RIGHT}
                items.append(SessionItem(
                    session=session, position=position, stimulus=stimuli[(r.dataset, r.image, left)],
                    right_stimulus=stimuli[(r.dataset, r.image, right)],
                    kind=SessionItem.Kind.PAIR_GOLD if r.kind == "gold" else SessionItem.Kind.PAIR,
                    expected_side=side_of.get(expected, "") if r.kind == "gold" else ""))
                ms = getattr(r, "response_ms", float("nan"))
                created_at = getattr(r, "created_at", pd.NaT)
                judgments.append(Judgment(rater=rater, side=side_of[r.choice],
                                          response_ms=None if pd.isna(ms) else int(ms),
                                          created_at=now if pd.isna(created_at) else created_at.to_pydatetime()))
        items = SessionItem.objects.bulk_create(items)
        for item, judgment in zip(items, judgments, strict=True):
            judgment.item = item
        Judgment.objects.bulk_create(judgments)
        if sha256_file(path) != digest:
            raise RatingsFileError(str(path), [LineError(1, "the file changed while it was imported; nothing was "
                                                            "imported: import it again")])
    return ImportResult(study, created, len(labels), len(frame))
