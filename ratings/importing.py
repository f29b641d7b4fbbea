"""Importing ratings gathered elsewhere (a lab, MTurk, Prolific) into a study: all or nothing.

The file is the tidy CSV ``rater,dataset,image,method,score[,created_at,kind,expected_score,...]``
validated by the rules of :func:`analysis.io.read_ratings_csv`, streamed in chunks
(:func:`analysis.io.validated_chunks`). A study that does not exist is created from the
datasets, images and methods the file names; images of known datasets (Set5, Set14, BSD100, or a
folder) are linked to their HR files so their stimuli can be made and measured later
(``run_study``-like generation with :func:`ratings.generation.enqueue_pending`).
"""

from __future__ import annotations

import codecs
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from analysis.io import LineError, RatingsFileError, RatingsFileWarning, RatingsScan, validated_chunks
from sr_models.datasets import DatasetError, find_dataset
from sr_models.inference import sha256_file
from sr_models.methods import INTERPOLATION_METHODS, NETWORK_METHODS

from .models import Condition, Rater, Rating, Session, SessionItem, SourceImage, Stimulus, Study, StudyDataset
from .study_file import REFERENCE_METHOD, RatingDesign, validate_study_name

__all__ = ["ImportResult", "StudyNameError", "check_study_name", "import_ratings"]

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
    """``name`` if it can name a study (``Study.name``'s validator); raises :class:`StudyNameError`
    before anything is read."""
    try:
        validate_study_name(name)
    except ValidationError as exc:
        raise StudyNameError(name, exc.messages[0]) from None
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


def _new_study(name: str, source: str, digest: str, plan: _ImportPlan) -> Study:
    datasets = list(plan.datasets)
    methods = list(dict.fromkeys(m for _, _, m in plan.stimuli))
    text = (f'# Created by import_ratings from {Path(source).name} (sha256 {digest}).\n'
            f'name = "{name}"\nseed = 0\ndatasets = {datasets!r}\nmethods = {methods!r}\n').replace("'", '"')
    # The sessions are the file's: no calibration, gold or repeats are drawn for an imported study.
    config = {"name": name, "seed": 0, "title": f"imported from {Path(source).name}", "scale": 4,
              "datasets": datasets, "methods": {d: methods for d in datasets}, "externals": {},
              "rating": RatingDesign(calibration_images=0).__dict__.copy(), "imported_from": Path(source).name}
    return Study.objects.create(name=name, title=config["title"], seed=0, config_text=text, config=config,
                                state=Study.State.READY)


class _ImportPlan:
    """What the writing pass needs of a validated file, gathered chunk by chunk in the first pass:
    per stimulus, dataset and rater a few values; per record only the rater's code and position."""

    def __init__(self, has_position: bool):
        self.stimuli: dict[tuple[str, str, str], int] = {}  # (dataset, image, method) -> first line
        self.datasets: dict[str, bool] = {}  # name -> rated only through gold items so far
        self.raters: dict[str, list[int]] = {}  # label -> [code, first line, records]
        self.has_position = has_position
        self._positions: list[tuple[np.ndarray, np.ndarray]] = []

    def add(self, chunk: pd.DataFrame) -> None:
        gold = chunk["kind"].eq("gold") if "kind" in chunk else pd.Series(False, index=chunk.index)
        for dataset, image, method, line, is_gold in zip(chunk["dataset"], chunk["image"], chunk["method"],
                                                          chunk["line"], gold):
            self.stimuli.setdefault((dataset, image, method), int(line))
            self.datasets[dataset] = self.datasets.get(dataset, True) and bool(is_gold)
        codes = []
        for label, line in zip(chunk["rater_id"], chunk["line"]):
            entry = self.raters.get(label)
            if entry is None:
                entry = self.raters[label] = [len(self.raters), int(line), 0]
            entry[2] += 1
            codes.append(entry[0])
        if self.has_position:
            # A missing position sorts after every given one, as pandas' sort_values puts NaN last.
            position = chunk["position"].astype("float64").fillna(np.inf).to_numpy()
            self._positions.append((np.asarray(codes, np.int32), position))

    def item_positions(self) -> np.ndarray | None:
        """Per record in file order, its place in its rater's session: by ``position``, then file order."""
        if not self.has_position or not self._positions:
            return None
        rater, position = (np.concatenate(part) for part in zip(*self._positions))
        self._positions = []
        order = np.lexsort((np.arange(len(rater)), position, rater))
        first = np.searchsorted(rater[order], rater[order], side="left")
        ranks = np.empty(len(rater), np.int64)
        ranks[order] = np.arange(len(rater)) - first
        return ranks


def _stimuli_for(study: Study, plan: _ImportPlan, create: bool) -> tuple[dict, list[LineError]]:
    """(dataset, image, method) -> Stimulus, creating rows in a new study; errors for unknown ones."""
    errors: list[LineError] = []
    existing = {
        (s.image.dataset.name, s.image.name, s.condition.name): s
        for s in Stimulus.objects.filter(study=study).select_related("image__dataset", "condition")
    }
    if not create:
        for (dataset, image, method), line in plan.stimuli.items():
            if (dataset, image, method) not in existing:
                errors.append(LineError(line, f"study {study.name!r} has no stimulus {dataset}/{image} [{method}]"))
        return existing, errors
    conditions = {}
    for position, method in enumerate(dict.fromkeys(m for _, _, m in plan.stimuli)):
        conditions[method] = Condition.objects.create(study=study, name=method, kind=_kind_of(method), position=position,
                                                      provenance={"source": "imported ratings"})
    # Per dataset, its images in order of first appearance, each with its first line and its methods.
    images: dict[str, dict[str, list]] = {name: {} for name in plan.datasets}
    for (name, image_name, method), line in plan.stimuli.items():
        entry = images[name].setdefault(image_name, [line, []])
        entry[0] = min(entry[0], line)
        entry[1].append(method)
    for position, (name, only_gold) in enumerate(plan.datasets.items()):
        try:
            found = find_dataset(name, settings.SR_DATASETS_ROOT, study.scale)
            pairs = {p.name: p for p in found}
            folder = str(found.folder)
        except DatasetError:
            pairs, folder = {}, ""
        # A dataset rated only through gold items is the calibration set, not part of the results.
        role = StudyDataset.Role.CALIBRATION if only_gold else StudyDataset.Role.TEST
        dataset = StudyDataset.objects.create(study=study, name=name, folder=folder, position=position, role=role)
        rated = dict.fromkeys(m for _, methods in images[name].values() for m in methods)
        dataset.conditions.add(*[conditions[m] for m in rated])
        for image_name, (line, methods) in images[name].items():
            pair = pairs.get(image_name)
            if pairs and pair is None:
                errors.append(LineError(line, f"dataset {name} has no image {image_name!r}"))
                continue
            image = SourceImage.objects.create(
                dataset=dataset, name=image_name, hr_path=str(pair.hr_path) if pair else "",
                lr_path=str(pair.lr_path) if pair else "", hr_sha256=sha256_file(pair.hr_path) if pair else "",
                width=0, height=0,
            )
            for method in methods:
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


# Records written per bulk insert, and read per chunk: one chunk's frame and model objects are all
# that is held beside the compact per-record codes, however long the file.
IMPORT_BATCH = 5000


def _write_chunk(chunk: pd.DataFrame, sessions: dict, stimuli: dict, placed: dict, ranks, now) -> None:
    """One chunk's session items and ratings; ``placed`` counts each rater's items written so far."""
    items, ratings = [], []
    for r in chunk.itertuples():
        session, rater = sessions[r.rater_id]
        if ranks is None:
            position = placed[r.rater_id]
            placed[r.rater_id] += 1
        else:
            position = int(ranks[r.ordinal])
        items.append(SessionItem(session=session, position=position, stimulus=stimuli[(r.dataset, r.image, r.method)],
                                 kind=_item_kind(getattr(r, "kind", "test")),
                                 expected_score=None if pd.isna(getattr(r, "expected_score", float("nan")))
                                 else int(r.expected_score)))
        response_ms, created_at = getattr(r, "response_ms", float("nan")), getattr(r, "created_at", pd.NaT)
        ratings.append(Rating(rater=rater, score=int(r.score),
                              response_ms=None if pd.isna(response_ms) else int(response_ms),
                              created_at=now if pd.isna(created_at) else created_at.to_pydatetime()))
    items = SessionItem.objects.bulk_create(items)
    for item, rating in zip(items, ratings):
        rating.item, rating.stimulus = item, item.stimulus
    Rating.objects.bulk_create(ratings)


def import_ratings(path: str | Path, study_name: str) -> ImportResult:
    """Validate the whole file, then store every rating in one transaction (or none), streaming both.

    The file is read twice, in chunks of ``IMPORT_BATCH`` records: a first pass validates every
    line (no transaction is open: a bad file never takes the database's write lock) and gathers
    what the study's stimuli and raters need; the second writes the records in that one
    transaction, checking each again as it goes, and rolls back if the file changed in between.
    Memory is one chunk plus a few integers per record and a few strings per stimulus and rater.

    Raises
    ------
    StudyNameError
        ``study_name`` is not a slug (letters, digits, ``-``, ``_``); nothing is read or stored.
    analysis.io.RatingsFileError
        Listing every malformed or inconsistent line; nothing is stored.
    """
    check_study_name(study_name)
    check_utf8(path)
    digest = sha256_file(path)
    scan = RatingsScan(path)
    plan = None
    for chunk in validated_chunks(scan, IMPORT_BATCH):
        plan = plan or _ImportPlan("position" in chunk)
        plan.add(chunk)
    scan.check()
    ranks = plan.item_positions()
    with transaction.atomic():
        study = Study.objects.select_for_update().filter(name=study_name).first()
        created = study is None
        if created:
            study = _new_study(study_name, str(path), digest, plan)
        stimuli, errors = _stimuli_for(study, plan, create=created)
        taken = set(Rater.objects.filter(study=study, label__in=set(plan.raters)).values_list("label", flat=True))
        for label in sorted(taken):
            errors.append(LineError(plan.raters[label][1], f"rater {label!r} already has ratings in study "
                                                           f"{study.name!r}; give the imported raters other names"))
        if errors:
            transaction.set_rollback(True)
            raise RatingsFileError(str(path), errors)
        now = timezone.now()
        sessions = {}
        for label, (_, _, count) in plan.raters.items():
            rater = Rater.objects.create(study=study, label=label, source=Rater.Source.IMPORTED)
            sessions[label] = (Session.objects.create(rater=rater, state=Session.State.COMPLETE, position=count,
                                                      planned_scored_items=count), rater)
        again = RatingsScan(path)
        placed = dict.fromkeys(plan.raters, 0)
        ordinal = 0
        for chunk in validated_chunks(again, IMPORT_BATCH):
            chunk.insert(0, "ordinal", range(ordinal, ordinal + len(chunk)))
            ordinal += len(chunk)
            _write_chunk(chunk, sessions, stimuli, placed, ranks, now)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RatingsFileWarning)  # warned once, by the first pass
            again.check()
        if sha256_file(path) != digest or again.records != scan.records:
            raise RatingsFileError(str(path), [LineError(1, "the file changed while it was imported; nothing was "
                                                            "imported: import it again")])
    return ImportResult(study, created, len(plan.raters), scan.records, scan.response_ms_dropped)
