"""Creating a study from its file, or resuming it: idempotent, safe under concurrent runs.

Every row is created through a unique key (study name; dataset, condition and image per study; one
stimulus per image and condition) with ``get_or_create`` / ``bulk_create(ignore_conflicts=True)``,
so running ``run_study`` twice, or twice at once, creates each row exactly once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction

from sr_models.datasets import find_dataset, training_image_paths
from sr_models.inference import sha256_file
from sr_models.methods import INTERPOLATION_METHODS, shipped_weights

from .labels import next_label_number
from .models import Condition, Judgment, Rater, Rating, Session, SourceImage, Stimulus, Study, StudyDataset
from .study_file import LIMITS, REFERENCE_METHOD, StudyConfig, image_size

__all__ = [
    "CALIBRATION_DATASET",
    "SetupResult",
    "StudyConflict",
    "StudyNotFound",
    "create_invitations",
    "create_or_resume_study",
    "get_study",
]

CALIBRATION_DATASET = "calibration"
CALIBRATION_METHODS = ("nearest", REFERENCE_METHOD)


class StudyConflict(ValueError):
    """The study file changed in a way that would rewrite an existing study."""


class StudyNotFound(LookupError):
    """No study of that name; the message lists the ones there are."""


def get_study(name: str) -> Study:
    try:
        return Study.objects.get(name=name)
    except Study.DoesNotExist:
        names = ", ".join(Study.objects.order_by("name").values_list("name", flat=True)) or "none"
        raise StudyNotFound(f"no study named {name!r} (studies: {names})") from None


@dataclass(frozen=True)
class SetupResult:
    study: Study
    created: bool
    new_stimuli: int


def _condition_kind(name: str, config: StudyConfig) -> str:
    if name == REFERENCE_METHOD:
        return Condition.Kind.REFERENCE
    if name in INTERPOLATION_METHODS:
        return Condition.Kind.INTERPOLATION
    if name in config.externals:
        return Condition.Kind.EXTERNAL
    return Condition.Kind.NETWORK


def _provenance(name: str, kind: str, config: StudyConfig) -> dict:
    if kind == Condition.Kind.NETWORK:
        try:
            path, card = shipped_weights(name, settings.SR_WEIGHTS_DIR)
        except Exception as exc:  # noqa: BLE001 - reported again, per stimulus, when generation runs
            return {"weights": None, "problem": str(exc)}
        return {"weights": path.name, "sha256": card.get("sha256") or sha256_file(path), "model_card": card}
    if kind == Condition.Kind.EXTERNAL:
        return {"dir": str(config.externals[name].dir)}
    if kind == Condition.Kind.INTERPOLATION:
        return {"implementation": "sr_models.resize.imresize (MATLAB imresize, uint8)"}
    return {"source": "the dataset's HR file"}


def _check_compatible(study: Study, config: StudyConfig) -> None:
    if study.config_sha256 == config.sha256:
        return
    n_ratings = Rating.objects.filter(rater__study=study).count() + Judgment.objects.filter(rater__study=study).count()
    has_ratings = n_ratings > 0
    if study.seed != config.seed and study.raters.exists():
        raise StudyConflict(f"study {study.name!r} already has raters; its seed cannot change "
                            f"({study.seed} -> {config.seed}). Use a new name for a new design.")
    old = study.config
    removed_datasets = set(old["datasets"]) - set(config.datasets)
    removed_methods = {
        f"{ds}/{m}" for ds, methods in old["methods"].items() for m in methods if m not in config.methods.get(ds, ())
    }
    if removed_datasets or removed_methods:
        raise StudyConflict(
            f"study {study.name!r} exists and the file no longer lists "
            f"{', '.join(sorted(removed_datasets | removed_methods))}; stimuli are never deleted by run_study "
            f"(delete the study in the admin, or use a new name)"
        )
    # Sessions drawn before the addition never show the new stimuli, so their MOS would rest on the
    # later raters only and not be comparable with the others: refuse once anything is rated.
    added_datasets = set(config.datasets) - set(old["datasets"])
    added_methods = {
        f"{ds}/{m}" for ds, methods in config.methods.items() if ds in old["methods"]
        for m in methods if m not in old["methods"][ds]
    }
    if has_ratings and (added_datasets or added_methods):
        raise StudyConflict(
            f"study {study.name!r} already has {n_ratings} rating{'s' if n_ratings != 1 else ''}; adding "
            f"{', '.join(sorted(added_datasets | added_methods))} would give the new stimuli none of the earlier "
            f"raters' sessions. Use a new study name for the larger design."
        )
    new = config.to_json()
    if has_ratings and old.get("rating") != new["rating"]:
        raise StudyConflict(f"study {study.name!r} already has ratings; its [rating] design cannot change")
    if has_ratings and (old.get("protocol", "acr"), old.get("pairwise")) != (new["protocol"], new.get("pairwise")):
        raise StudyConflict(f"study {study.name!r} already has answers; its protocol and [pairwise] design cannot change")


def create_or_resume_study(config: StudyConfig) -> SetupResult:
    """Create the study's rows (or the missing ones) and return the study.

    Raises
    ------
    StudyConflict
        If the study exists and the file would remove or change what has been rated.
    """
    # The rating design is stored once, in config["rating"] (Study.design reads it).
    defaults = {"title": config.title, "seed": config.seed, "scale": config.scale, "config_text": config.text,
                "config": config.to_json()}
    with transaction.atomic():
        study, created = Study.objects.get_or_create(name=config.name, defaults=defaults)
        study = Study.objects.select_for_update().get(pk=study.pk)  # one setup at a time per study
        if not created:
            _check_compatible(study, config)
            for key, value in defaults.items():
                setattr(study, key, value)
            study.save()
        before = study.stimuli.count()
        conditions = _ensure_conditions(study, config)
        for position, ds_name in enumerate(config.datasets):
            dataset = _ensure_dataset(study, ds_name, str(config.dataset_folders[ds_name]), StudyDataset.Role.TEST, position)
            dataset.conditions.add(*[conditions[m] for m in config.methods[ds_name]])
            _ensure_test_images(dataset, config)
        if config.calibration_count:
            _ensure_calibration(study, config, conditions)
        _ensure_stimuli(study)
        new = study.stimuli.count() - before
        if new:
            Study.objects.filter(pk=study.pk).update(state=Study.State.GENERATING)
            study.refresh_from_db()
    return SetupResult(study, created, new)


def _ensure_conditions(study: Study, config: StudyConfig) -> dict[str, Condition]:
    names = config.all_methods()
    if config.calibration_count:
        names += [m for m in CALIBRATION_METHODS if m not in names]
    out = {}
    for position, name in enumerate(names):
        kind = _condition_kind(name, config)
        condition, _ = Condition.objects.get_or_create(
            study=study, name=name,
            defaults={"kind": kind, "position": position, "provenance": _provenance(name, kind, config),
                      "external_dir": str(config.externals[name].dir) if name in config.externals else ""},
        )
        out[name] = condition
    return out


def _ensure_dataset(study: Study, name: str, folder: str, role: str, position: int) -> StudyDataset:
    dataset, _ = StudyDataset.objects.get_or_create(
        study=study, name=name, defaults={"folder": folder, "role": role, "position": position}
    )
    return dataset


def _image_rows(dataset: StudyDataset, entries) -> None:
    existing = set(dataset.images.values_list("name", flat=True))
    SourceImage.objects.bulk_create(
        [SourceImage(dataset=dataset, **entry) for entry in entries if entry["name"] not in existing],
        ignore_conflicts=True,
    )


def _ensure_test_images(dataset: StudyDataset, config: StudyConfig) -> None:
    ds = find_dataset(dataset.folder, None, config.scale)
    entries = []
    for pair in ds:
        width, height = image_size(pair.hr_path)
        entries.append({"name": pair.name, "hr_path": str(pair.hr_path), "lr_path": str(pair.lr_path),
                        "hr_sha256": sha256_file(pair.hr_path), "width": width, "height": height})
    _image_rows(dataset, entries)


def _ensure_calibration(study: Study, config: StudyConfig, conditions: dict[str, Condition]) -> None:
    """BSD200 training images (never test images) for calibration and gold items, chosen by seed."""
    from sr_models.datasets import image_name

    paths = training_image_paths(settings.SR_DATASETS_ROOT, ("BSD200",))
    count = config.calibration_count
    if count > len(paths):
        raise StudyConflict(f"{count} calibration + gold images asked for, but BSD200 has {len(paths)}")
    chosen = random.Random(f"{config.seed}:calibration").sample(paths, count)
    dataset = _ensure_dataset(study, CALIBRATION_DATASET, str(Path(paths[0]).parent), StudyDataset.Role.CALIBRATION, 999)
    dataset.conditions.add(*[conditions[m] for m in CALIBRATION_METHODS])
    entries = []
    for path in chosen:
        width, height = image_size(path)
        # HR is cropped to a multiple of the scale when the stimulus is made, as benchmark files are.
        entries.append({"name": image_name(path), "hr_path": str(path), "lr_path": "", "hr_sha256": sha256_file(path),
                        "width": width - width % config.scale, "height": height - height % config.scale})
    _image_rows(dataset, entries)


def _ensure_stimuli(study: Study) -> None:
    rows = []
    for dataset in study.datasets.prefetch_related("conditions", "images"):
        for image in dataset.images.all():
            for condition in dataset.conditions.all():
                rows.append(Stimulus(study=study, image=image, condition=condition))
    # ignore_conflicts: a concurrent run_study may have inserted some of them already.
    Stimulus.objects.bulk_create(rows, ignore_conflicts=True, batch_size=500)


# Invitations are created this many per transaction: each batch holds the study's row lock (and, on
# SQLite, the database's write lock) for milliseconds, so enrolment and ratings go on meanwhile.
INVITATION_BATCH = 200


def create_invitations(study: Study, count: int) -> list[Rater]:
    """Create ``count`` invited raters labelled r001, r002, ... after the highest existing label.

    In batches of ``INVITATION_BATCH``, one transaction each: a large count never holds a write lock
    for longer than one batch. A run interrupted between batches keeps the batches it made.
    """
    if not 0 <= count <= LIMITS["raters"]:
        raise ValueError(f"{count} invitations: at most {LIMITS['raters']:,} at a time")
    raters: list[Rater] = []
    for start in range(0, count, INVITATION_BATCH):
        with transaction.atomic():
            Study.objects.select_for_update().get(pk=study.pk)  # serialise label numbering
            first = next_label_number(study, "r")
            batch = Rater.objects.bulk_create([
                Rater(study=study, label=f"r{k:03d}", source=Rater.Source.INVITATION)
                for k in range(first, first + min(INVITATION_BATCH, count - start))
            ])
            Session.objects.bulk_create([Session(rater=rater) for rater in batch])
        raters.extend(batch)
    return raters
