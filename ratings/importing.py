"""Importing ratings gathered elsewhere (a lab, MTurk, Prolific) into a study: all or nothing.

The file is the tidy CSV ``rater,dataset,image,method,score[,created_at,kind,expected_score,...]``
validated by :func:`analysis.io.read_ratings_csv`. A study that does not exist is created from the
datasets, images and methods the file names; images of known datasets (Set5, Set14, BSD100, or a
folder) are linked to their HR files so their stimuli can be made and measured later
(``run_study``-like generation with :func:`ratings.generation.enqueue_pending`).
"""

from __future__ import annotations

import codecs
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from analysis.io import LineError, RatingsFileError, read_ratings_csv
from sr_models.datasets import DatasetError, find_dataset
from sr_models.inference import sha256_file
from sr_models.methods import INTERPOLATION_METHODS, NETWORK_METHODS

from .models import Condition, Rater, Rating, Session, SessionItem, SourceImage, Stimulus, Study, StudyDataset
from .study_file import REFERENCE_METHOD

__all__ = ["ImportResult", "StudyNameError", "check_study_name", "import_ratings"]

# What a Study.name (a SlugField) holds: it becomes part of URLs (/studies/<name>/) and folder names.
_STUDY_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_STUDY_NAME_MAX = Study._meta.get_field("name").max_length


@dataclass(frozen=True)
class ImportResult:
    study: Study
    created: bool
    raters: int
    ratings: int
    response_ms_dropped: int = 0  # response times above an hour, stored as missing


class StudyNameError(RatingsFileError):
    """A study name that is not a slug. A ``RatingsFileError`` (with no line errors) so that callers
    that report a bad import, like the ``import_ratings`` command, report this one too."""

    def __init__(self, name: str, reason: str):
        ValueError.__init__(self, f"study name {name!r} {reason}")
        self.source, self.errors = name, []


def check_study_name(name: str) -> str:
    """``name`` if it can name a study; raises :class:`StudyNameError` before anything is read."""
    if not _STUDY_NAME.match(name or ""):
        raise StudyNameError(name, "is not valid: use only letters, digits, '-' and '_' (no spaces or "
                                   "dots); it becomes part of URLs and folder names")
    if len(name) > _STUDY_NAME_MAX:
        raise StudyNameError(name, f"is too long ({len(name)} characters; at most {_STUDY_NAME_MAX})")
    return name


def _kind_of(method: str) -> str:
    if method == REFERENCE_METHOD:
        return Condition.Kind.REFERENCE
    if method in INTERPOLATION_METHODS:
        return Condition.Kind.INTERPOLATION
    if method in NETWORK_METHODS:
        return Condition.Kind.NETWORK
    return Condition.Kind.EXTERNAL


def _item_kind(kind) -> str:
    return "test" if kind is None or (isinstance(kind, float) and pd.isna(kind)) or kind == "" else str(kind)


def _new_study(name: str, source: str, digest: str, frame: pd.DataFrame) -> Study:
    datasets = list(dict.fromkeys(frame["dataset"]))
    methods = list(dict.fromkeys(frame["method"]))
    text = (f'# Created by import_ratings from {Path(source).name} (sha256 {digest}).\n'
            f'name = "{name}"\nseed = 0\ndatasets = {datasets!r}\nmethods = {methods!r}\n').replace("'", '"')
    config = {"name": name, "seed": 0, "title": f"imported from {Path(source).name}", "scale": 4,
              "datasets": datasets, "methods": {d: methods for d in datasets}, "externals": {},
              "rating": {"imported_from": Path(source).name}}
    return Study.objects.create(name=name, title=config["title"], seed=0, config_text=text, config=config,
                                config_sha256=hashlib.sha256(text.encode()).hexdigest(), state=Study.State.READY,
                                calibration_images=0)


def _stimuli_for(study: Study, frame: pd.DataFrame, create: bool) -> tuple[dict, list[LineError]]:
    """(dataset, image, method) -> Stimulus, creating rows in a new study; errors for unknown ones."""
    errors: list[LineError] = []
    existing = {
        (s.image.dataset.name, s.image.name, s.condition.name): s
        for s in Stimulus.objects.filter(study=study).select_related("image__dataset", "condition")
    }
    if not create:
        for row in frame.itertuples():
            if (row.dataset, row.image, row.method) not in existing:
                errors.append(LineError(row.line, f"study {study.name!r} has no stimulus {row.dataset}/{row.image} [{row.method}]"))
        return existing, errors
    conditions = {}
    for position, method in enumerate(dict.fromkeys(frame["method"])):
        conditions[method] = Condition.objects.create(study=study, name=method, kind=_kind_of(method), position=position,
                                                      provenance={"source": "imported ratings"})
    for position, name in enumerate(dict.fromkeys(frame["dataset"])):
        try:
            found = find_dataset(name, settings.SR_DATASETS_ROOT, study.scale)
            pairs = {p.name: p for p in found}
            folder = str(found.folder)
        except DatasetError:
            pairs, folder = {}, ""
        part = frame[frame["dataset"] == name]
        # A dataset rated only through gold items is the calibration set, not part of the results.
        only_gold = "kind" in part and (part["kind"] == "gold").all()
        role = StudyDataset.Role.CALIBRATION if only_gold else StudyDataset.Role.TEST
        dataset = StudyDataset.objects.create(study=study, name=name, folder=folder, position=position, role=role)
        dataset.conditions.add(*[conditions[m] for m in dict.fromkeys(part["method"])])
        # One pass over the rows (a lookup per image was quadratic: minutes for 10^5 ratings).
        by_image = part.groupby("image", sort=False)
        first_lines, methods_of = by_image["line"].first(), by_image["method"].unique()
        for image_name in dict.fromkeys(part["image"]):
            pair = pairs.get(image_name)
            if pairs and pair is None:
                line = int(first_lines[image_name])
                errors.append(LineError(line, f"dataset {name} has no image {image_name!r}"))
                continue
            image = SourceImage.objects.create(
                dataset=dataset, name=image_name, hr_path=str(pair.hr_path) if pair else "",
                lr_path=str(pair.lr_path) if pair else "", hr_sha256=sha256_file(pair.hr_path) if pair else "",
                width=0, height=0,
            )
            for method in methods_of[image_name]:
                # Stimuli of known images can be made (and measured) later; others stay as records.
                state = Stimulus.State.PENDING if pair and conditions[method].kind != Condition.Kind.EXTERNAL else Stimulus.State.DONE
                existing[(name, image_name, method)] = Stimulus.objects.create(
                    study=study, image=image, condition=conditions[method], state=state,
                    error="" if state == Stimulus.State.PENDING else "imported ratings: no stimulus file")
    return existing, errors


def check_utf8(path: str | Path) -> None:
    """Raise ``RatingsFileError`` naming the line of the first byte that is not UTF-8 (a CSV saved as
    Latin-1 or Windows-1252 by a spreadsheet program); read in blocks, so any size is fine."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                line += block[:exc.start].count(b"\n")
                raise RatingsFileError(str(path), [LineError(line, (
                    f"byte 0x{block[exc.start]:02x} is not UTF-8 text: save the file as UTF-8 (CSV UTF-8 "
                    f"in a spreadsheet program); it looks like Latin-1 or Windows-1252"))]) from None
            line += block.count(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise RatingsFileError(str(path), [LineError(line, "the file ends in the middle of a UTF-8 character")]) from None


# Rows written per bulk insert: the model objects of one batch are all that is held beside the
# validated frame, however many ratings a rater has.
IMPORT_BATCH = 5000


def _write_rater(study: Study, stimuli: dict, label: str, rows: pd.DataFrame, now) -> int:
    """One imported rater, their completed session and their ratings, in batches; returns the count."""
    rater = Rater.objects.create(study=study, label=label, source=Rater.Source.IMPORTED)
    session = Session.objects.create(rater=rater, state=Session.State.COMPLETE, position=len(rows),
                                     rated_items=len(rows))
    if "position" in rows:
        rows = rows.sort_values("position", kind="stable")
    for start in range(0, len(rows), IMPORT_BATCH):
        batch = list(rows.iloc[start:start + IMPORT_BATCH].itertuples())
        items = SessionItem.objects.bulk_create([
            SessionItem(session=session, position=k, stimulus=stimuli[(r.dataset, r.image, r.method)],
                        kind=_item_kind(getattr(r, "kind", "test")),
                        expected_score=None if pd.isna(getattr(r, "expected_score", float("nan"))) else int(r.expected_score))
            for k, r in enumerate(batch, start)
        ])
        Rating.objects.bulk_create([
            Rating(item=item, rater=rater, stimulus=item.stimulus, score=int(r.score),
                   response_ms=None if pd.isna(getattr(r, "response_ms", float("nan"))) else int(r.response_ms),
                   created_at=now if pd.isna(getattr(r, "created_at", pd.NaT)) else r.created_at.to_pydatetime())
            for item, r in zip(items, batch)
        ])
    return len(rows)


def import_ratings(path: str | Path, study_name: str) -> ImportResult:
    """Validate the whole file, then store every rating in one transaction (or none).

    Raises
    ------
    StudyNameError
        ``study_name`` is not a slug (letters, digits, ``-``, ``_``); nothing is read or stored.
    analysis.io.RatingsFileError
        Listing every malformed or inconsistent line; nothing is stored.
    """
    check_study_name(study_name)
    check_utf8(path)
    frame = read_ratings_csv(path)
    digest = sha256_file(path)
    with transaction.atomic():
        study = Study.objects.select_for_update().filter(name=study_name).first()
        created = study is None
        if created:
            study = _new_study(study_name, str(path), digest, frame)
        stimuli, errors = _stimuli_for(study, frame, create=created)
        taken = set(Rater.objects.filter(study=study, label__in=set(frame["rater_id"])).values_list("label", flat=True))
        for label in sorted(taken):
            line = int(frame.loc[frame["rater_id"] == label, "line"].iloc[0])
            errors.append(LineError(line, f"rater {label!r} already has ratings in study {study.name!r}; "
                                          f"give the imported raters other names"))
        if errors:
            transaction.set_rollback(True)
            raise RatingsFileError(str(path), errors)
        now = timezone.now()
        n_ratings = sum(_write_rater(study, stimuli, label, rows, now)
                        for label, rows in frame.groupby("rater_id", sort=False))
    return ImportResult(study, created, frame["rater_id"].nunique(), n_ratings,
                        frame.attrs.get("response_ms_dropped", 0))
