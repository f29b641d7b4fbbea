"""The study file: a TOML description of what is rated and how, validated with errors that name
the key and the line.

Example (``studies/demo.toml``)::

    name = "demo"
    seed = 2017
    datasets = ["Set5"]
    methods = ["nearest", "bicubic", "srresnet-mse", "srgan-vgg54", "hr"]

    [methods_per_dataset]          # optional: a different list for some datasets
    BSD100 = ["nearest", "bicubic", "srresnet-mse", "srgan-vgg54", "hr"]

    [rating]
    raters = 26                    # invitations run_study creates
    calibration_images = 20        # BSD200 images shown as NN (told 1) and HR (told 5) first
    gold_items = 4                 # unannounced NN/HR checks among the test items
    break_every = 100
    assignment = "all"             # or "balanced" with ratings_per_stimulus and items_per_rater

    [rating.repeats]               # test-retest: these stimuli are shown twice
    dataset = "BSD100"
    method = "bicubic"
    images = 10

A method is a name (``nearest``, ``bicubic``, a network variant, ``hr``) or an external folder,
``{name = "SRCNN", dir = "results/SRCNN"}``, holding one SR image per test image named after it
(``img_001.png`` or ``img_001_SRF_4_SRCNN.png``), in a subfolder per dataset when the study has
several datasets (``results/SRCNN/Set5/...``).
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from django.core.exceptions import ValidationError

from sr_models.datasets import DatasetError, find_dataset
from sr_models.images import MAX_IMAGE_SIDE, ImageError, image_size  # one size rule, checked on the header
from sr_models.methods import INTERPOLATION_METHODS, NETWORK_METHODS

from .crowd import CrowdConfig, CrowdError, parse_crowd
from .pairwise_design import PAIRED_PROTOCOLS, PairwiseDesign, PairwiseDesignError, parse_pairwise
from .worker_checks import AttentionRules, Qualification, WorkerChecksError, parse_attention, parse_qualification

__all__ = ["LIMITS", "MAX_IMAGE_SIDE", "image_size", "StudyFileError", "ExternalMethod", "StudyConfig", "RatingDesign", "parse_study_file", "load_study_file", "validate_study_name"]

REFERENCE_METHOD = "hr"
BUILTIN_METHODS = (*INTERPOLATION_METHODS, *NETWORK_METHODS, REFERENCE_METHOD)
STUDY_NAME_MAX = 100
_STUDY_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]*")
_METHOD_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


def validate_study_name(name) -> None:
    """The one rule for a study's name: ``Study.name``'s validator, read by the study file and import_ratings.

    Lowercase only: the name becomes part of URLs and of folder names, and on a case-insensitive
    file system (macOS, Windows) ``Lab`` and ``lab`` would share a report folder.
    """
    if not isinstance(name, str) or not _STUDY_NAME_RE.fullmatch(name):
        raise ValidationError("must be a short lowercase name of letters, digits, '-' and '_', starting with a "
                              "letter or digit (it becomes part of URLs and paths)", code="invalid")
    if len(name) > STUDY_NAME_MAX:
        raise ValidationError(f"is too long ({len(name)} characters; at most {STUDY_NAME_MAX})", code="max_length")


class StudyFileError(ValueError):
    """A study file that cannot be used; says which file, key and line."""

    def __init__(self, source: str, key: str | None, line: int | None, problem: str):
        self.source, self.key, self.line, self.problem = source, key, line, problem
        where = source + (f", line {line}" if line else "") + (f", key '{key}'" if key else "")
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class ExternalMethod:
    name: str
    dir: Path


@dataclass(frozen=True)
class RatingDesign:
    raters: int = 0
    calibration_images: int = 20
    gold_items: int = 0
    break_every: int = 0
    assignment: str = "all"
    ratings_per_stimulus: int = 0
    items_per_rater: int = 0
    repeat_dataset: str = ""
    repeat_method: str = ""
    repeat_images: int = 0


@dataclass(frozen=True)
class StudyConfig:
    name: str
    seed: int
    title: str
    scale: int
    datasets: tuple[str, ...]
    # dataset -> method names, in display order
    methods: dict[str, tuple[str, ...]]
    externals: dict[str, ExternalMethod]
    rating: RatingDesign
    text: str = field(repr=False)
    dataset_folders: dict[str, Path] = field(default_factory=dict, repr=False)
    pairwise: PairwiseDesign = PairwiseDesign(protocol="acr")
    # Crowd studies (issue 18): the platform, and the worker checks; None: not used (a lab study).
    crowd: CrowdConfig | None = None
    qualification: Qualification | None = None
    attention: AttentionRules | None = None

    @property
    def protocol(self) -> str:
        return self.pairwise.protocol

    @property
    def calibration_count(self) -> int:
        """BSD200 images the study needs beside its test sets: calibration and gold items (ACR), or
        practice and gold pairs (paired protocols), each shown as nearest-neighbour and original."""
        if self.protocol in PAIRED_PROTOCOLS:
            return self.pairwise.practice_pairs + self.pairwise.gold_pairs
        training = self.qualification.training_items if self.qualification else 0
        return self.rating.calibration_images + self.rating.gold_items + training

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    def all_methods(self) -> list[str]:
        seen: list[str] = []
        for names in self.methods.values():
            seen.extend(n for n in names if n not in seen)
        return seen

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "seed": self.seed,
            "title": self.title,
            "scale": self.scale,
            "datasets": list(self.datasets),
            "methods": {k: list(v) for k, v in self.methods.items()},
            "externals": {k: str(v.dir) for k, v in self.externals.items()},
            "rating": self.rating.__dict__.copy(),
            "protocol": self.protocol,
            **({"pairwise": self.pairwise.to_json()} if self.protocol in PAIRED_PROTOCOLS else {}),
            **({"crowd": self.crowd.to_json()} if self.crowd else {}),
            **({"qualification": self.qualification.to_json()} if self.qualification else {}),
            **({"attention": self.attention.to_json()} if self.attention else {}),
        }


# Upper bounds of every count in the study file (README, "The study file"). They keep a slip of the
# keyboard (raters = 1000000000) from turning into hours of writes that lock the live site; each is
# far above any MOS study (the SRGAN paper: 26 raters, 1128 items per rater).
LIMITS = {
    "raters": 10_000,
    "calibration_images": 200,  # the BSD200 training images
    "gold_items": 200,
    "break_every": 10_000,
    "ratings_per_stimulus": 1_000,
    "items_per_rater": 10_000,
    "repeats.images": 1_000,
}

_TOP_KEYS = {"name", "title", "seed", "scale", "datasets", "methods", "methods_per_dataset", "rating", "protocol",
             "pairwise", "crowd", "qualification", "attention"}
# [rating] keys of the 1-5 protocol only: a paired study says how it samples in [pairwise].
_ACR_ONLY_RATING_KEYS = ("gold_items", "assignment", "ratings_per_stimulus", "items_per_rater", "repeats")
_RATING_KEYS = {
    "raters", "calibration_images", "gold_items", "break_every", "assignment", "ratings_per_stimulus",
    "items_per_rater", "repeats",
}  # fmt: skip
_REPEAT_KEYS = {"dataset", "method", "images"}


class _Locator:
    """Finds the line of a key (or of a value inside it) in the TOML text, for error messages."""

    def __init__(self, text: str):
        self.lines = text.splitlines()

    def _table_range(self, table: str | None) -> tuple[int, int]:
        if table is None:
            start = 0
        else:
            header = re.compile(r"^\s*\[\s*" + re.escape(table) + r"\s*\]\s*(#.*)?$")
            start = next((i + 1 for i, line in enumerate(self.lines) if header.match(line)), None)
            if start is None:
                return 0, 0
        end = next((i for i in range(start, len(self.lines)) if re.match(r"^\s*\[", self.lines[i])), len(self.lines))
        return start, end

    def line(self, key: str, table: str | None = None, value: str | None = None) -> int | None:
        start, end = self._table_range(table)
        key_re = re.compile(r"^\s*" + re.escape(key) + r"\s*=")
        for i in range(start, end):
            if key_re.match(self.lines[i]):
                if value is None:
                    return i + 1
                for j in range(i, end):
                    if re.search(r"[\"']" + re.escape(value) + r"[\"']", self.lines[j]):
                        return j + 1
                return i + 1
        if table is not None:
            return self._table_range(table)[0] or None
        return None


def parse_study_file(text: str, source: str = "<study file>", *, datasets_root: Path | None = None,
                     base_dir: Path | None = None, check_datasets: bool = True) -> StudyConfig:
    """Parse and validate a study file.

    Parameters
    ----------
    datasets_root : where named datasets live (``SR_DATASETS_ROOT``).
    base_dir : relative external ``dir`` entries are resolved against it (the study file's folder).
    check_datasets : look the datasets and external folders up on disk (names, files, sizes).

    Raises
    ------
    StudyFileError
        Naming the key and line of the first problem.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"line (\d+)", str(exc))
        line = int(match.group(1)) if match else (len(text.splitlines()) if "end of document" in str(exc) else None)
        raise StudyFileError(source, None, line, f"not valid TOML: {exc}") from None
    loc = _Locator(text)

    def fail(key: str, problem: str, table: str | None = None, value: str | None = None):
        raise StudyFileError(source, f"{table}.{key}" if table else key, loc.line(key, table, value), problem)

    for key in data:
        if key not in _TOP_KEYS:
            fail(key, f"unknown key; the study file knows {', '.join(sorted(_TOP_KEYS))}")
    for required in ("name", "seed", "datasets", "methods"):
        if required not in data:
            raise StudyFileError(source, required, None, "missing (required)")

    name = data["name"]
    try:
        validate_study_name(name)
    except ValidationError as exc:
        fail("name", exc.messages[0])
    seed = data["seed"]
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63:
        fail("seed", "must be a non-negative integer")
    title = data.get("title", "")
    if not isinstance(title, str):
        fail("title", "must be a string")
    scale = data.get("scale", 4)
    if scale != 4:
        fail("scale", "only 4x studies are supported (the shipped networks and benchmark files are 4x)")

    datasets = data["datasets"]
    if not isinstance(datasets, list) or not datasets or not all(isinstance(d, str) for d in datasets):
        fail("datasets", 'must be a non-empty list of dataset names or folders, e.g. ["Set5", "Set14"]')
    if len(set(datasets)) != len(datasets):
        fail("datasets", "lists a dataset twice")

    externals: dict[str, ExternalMethod] = {}

    def parse_methods(value, key: str, table: str | None) -> tuple[str, ...]:
        if not isinstance(value, list) or not value:
            fail(key, "must be a non-empty list of methods", table)
        names: list[str] = []
        for entry in value:
            if isinstance(entry, dict):
                unknown = set(entry) - {"name", "dir"}
                if unknown or "name" not in entry or "dir" not in entry:
                    fail(key, 'an external method is {name = "...", dir = "..."}', table)
                m_name, m_dir = entry["name"], entry["dir"]
                if not isinstance(m_name, str) or not _METHOD_NAME_RE.match(m_name):
                    fail(key, f"external method name {m_name!r} must be letters, digits, '.', '+', '-', '_'", table)
                if m_name in BUILTIN_METHODS:
                    fail(key, f"external method name {m_name!r} clashes with a built-in method", table, m_name)
                path = Path(str(m_dir)).expanduser()
                if not path.is_absolute() and base_dir is not None:
                    path = (base_dir / path).resolve()
                previous = externals.get(m_name)
                if previous and previous.dir != path:
                    fail(key, f"external method {m_name!r} is given two different folders", table, m_name)
                externals[m_name] = ExternalMethod(m_name, path)
                entry = m_name
            if not isinstance(entry, str):
                fail(key, f"{entry!r} is neither a method name nor an external {{name, dir}} table", table)
            if entry not in BUILTIN_METHODS and entry not in externals:
                fail(key, f"unknown method {entry!r}; built-in methods are {', '.join(BUILTIN_METHODS)}, "
                          f'or give an external folder as {{name = "{entry}", dir = "..."}}', table, entry)
            if entry in names:
                fail(key, f"method {entry!r} is listed twice", table, entry)
            names.append(entry)
        return tuple(names)

    default_methods = parse_methods(data["methods"], "methods", None)
    per_dataset = data.get("methods_per_dataset", {})
    if not isinstance(per_dataset, dict):
        fail("methods_per_dataset", "must be a table of dataset = [methods]")
    methods = {}
    for ds in datasets:
        if ds in per_dataset:
            methods[ds] = parse_methods(per_dataset[ds], ds, "methods_per_dataset")
        else:
            methods[ds] = default_methods
    for ds in per_dataset:
        if ds not in datasets:
            fail(ds, f"dataset {ds!r} is not in datasets = {datasets}", "methods_per_dataset")

    rating = _parse_rating(data.get("rating", {}), datasets, methods, fail)
    pairwise = _parse_protocol(data, datasets, methods, fail)
    crowd, qualification, attention = _parse_crowd_tables(data, pairwise, fail)

    folders: dict[str, Path] = {}
    if check_datasets:
        for ds in datasets:
            try:
                candidate = Path(ds)
                if not candidate.is_absolute() and base_dir is not None and (base_dir / candidate).is_dir():
                    candidate = base_dir / candidate
                found = find_dataset(candidate if candidate.is_dir() else ds, datasets_root, scale)
                for pair in found:
                    image_size(pair.hr_path)
                folders[ds] = found.folder
            except (DatasetError, ImageError) as exc:
                fail("datasets", str(exc), None, ds)
        for ext in externals.values():
            problem = check_external_folder(ext, [d for d in datasets if ext.name in methods[d]], folders, scale, len(datasets))
            if problem:
                fail("methods", problem, None, ext.name)
    return StudyConfig(name=name, seed=seed, title=title, scale=scale, datasets=tuple(datasets), methods=methods,
                       externals=externals, rating=rating, text=text, dataset_folders=folders, pairwise=pairwise,
                       crowd=crowd, qualification=qualification, attention=attention)


def _parse_protocol(data: dict, datasets, methods, fail) -> PairwiseDesign:
    """``protocol`` and ``[pairwise]`` (:mod:`ratings.pairwise_design`), and what a paired protocol
    needs of the methods: two conditions to compare, and the original where it is shown."""
    try:
        design = parse_pairwise(data.get("protocol", "acr"), data.get("pairwise"))
    except PairwiseDesignError as exc:
        table, _, key = exc.key.rpartition(".")
        fail(key, exc.problem, table or None)
    if design.protocol not in PAIRED_PROTOCOLS:
        return design
    for key in _ACR_ONLY_RATING_KEYS:
        if key in data.get("rating", {}):
            fail(key, f'belongs to protocol = "acr"; a {design.protocol} study sets its sampling in [pairwise]', "rating")
    needs_hr = design.protocol == "2afc-real" or design.reference == REFERENCE_METHOD or design.practice_pairs \
        or design.gold_pairs
    for ds in datasets:
        compared = [m for m in methods[ds] if m != REFERENCE_METHOD]
        if design.protocol == "pairwise" and len(compared) < 2:
            fail("methods", f"a paired study compares at least two methods on {ds} besides hr")
        if design.protocol == "2afc-real" and not compared:
            fail("methods", f"a 2afc-real study needs at least one method besides hr on {ds}")
        if needs_hr and REFERENCE_METHOD not in methods[ds]:
            fail("methods", f'{ds} needs "hr" in its methods: the original is shown (2afc-real, reference = "hr", '
                            f"practice and gold pairs)")
    return design


def _parse_crowd_tables(data: dict, pairwise: PairwiseDesign, fail):
    """``[crowd]`` (:mod:`ratings.crowd`), ``[qualification]`` and ``[attention]``
    (:mod:`ratings.worker_checks`), each None when absent."""
    parsed = []
    for key, parse in (("crowd", parse_crowd), ("qualification", parse_qualification),
                       ("attention", parse_attention)):
        table = data.get(key)
        if table is not None and not isinstance(table, dict):
            fail(key, "must be a table")
        try:
            parsed.append(parse(table))
        except (CrowdError, WorkerChecksError) as exc:
            table_name, _, name = exc.key.rpartition(".")
            fail(name, exc.problem, table_name or None)
    qualification = parsed[1]
    if qualification and qualification.training_items and pairwise.protocol in PAIRED_PROTOCOLS:
        fail("training_items", f"training items are rated 1-5; a {pairwise.protocol} study trains with "
                               "[pairwise] practice_pairs (set training_items = 0)", "qualification")
    return tuple(parsed)


def _parse_rating(table, datasets, methods, fail) -> RatingDesign:
    if not isinstance(table, dict):
        fail("rating", "must be a table")
    for key in table:
        if key not in _RATING_KEYS:
            fail(key, f"unknown key; [rating] knows {', '.join(sorted(_RATING_KEYS))}", "rating")

    def count(key: str, default: int) -> int:
        value = table.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            fail(key, "must be a non-negative integer", "rating")
        if value > LIMITS[key]:
            fail(key, f"at most {LIMITS[key]:,} (got {value:,})", "rating")
        return value

    assignment = table.get("assignment", "all")
    if assignment not in ("all", "balanced"):
        fail("assignment", 'must be "all" (every rater rates everything) or "balanced"', "rating")
    design = dict(
        raters=count("raters", 0),
        calibration_images=count("calibration_images", 20),
        gold_items=count("gold_items", 0),
        break_every=count("break_every", 0),
        assignment=assignment,
        ratings_per_stimulus=count("ratings_per_stimulus", 0),
        items_per_rater=count("items_per_rater", 0),
    )
    if assignment == "balanced" and (not design["ratings_per_stimulus"] or not design["items_per_rater"]):
        fail("assignment", "a balanced assignment needs ratings_per_stimulus and items_per_rater", "rating")
    repeats = table.get("repeats")
    if repeats is not None:
        if not isinstance(repeats, dict):
            fail("repeats", "must be a table with dataset, method and images", "rating")
        for key in repeats:
            if key not in _REPEAT_KEYS:
                fail(key, f"unknown key; [rating.repeats] knows {', '.join(sorted(_REPEAT_KEYS))}", "rating.repeats")
        ds, method, images = repeats.get("dataset"), repeats.get("method"), repeats.get("images", 0)
        if ds not in datasets:
            fail("dataset", f"{ds!r} is not one of the study's datasets {datasets}", "rating.repeats")
        if method not in methods[ds]:
            fail("method", f"{method!r} is not rated on {ds} ({', '.join(methods[ds])})", "rating.repeats")
        if not isinstance(images, int) or isinstance(images, bool) or images < 1:
            fail("images", "must be a positive integer", "rating.repeats")
        if images > LIMITS["repeats.images"]:
            fail("images", f"at most {LIMITS['repeats.images']:,} (got {images:,})", "rating.repeats")
        design.update(repeat_dataset=ds, repeat_method=method, repeat_images=images)
    return RatingDesign(**design)


def image_files(folder: Path) -> dict[str, Path]:
    """The images of ``folder`` by image name (``img_001_SRF_4_EDSR.png`` -> ``img_001``).

    The one rule for finding an external method's image: the study file's check and the stimulus
    that is made from it read the same file. Hidden files (a writer's temporaries) are skipped; when
    two files give one name, the first in sorted order is taken.
    """
    from sr_models.datasets import IMAGE_SUFFIXES, image_name

    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith("."):
            files.setdefault(image_name(path), path)
    return files


def external_folder_for(ext: ExternalMethod, dataset: str, n_datasets: int) -> Path:
    """``dir/<dataset>/`` when it exists, else ``dir`` itself (only for a one-dataset study)."""
    sub = ext.dir / Path(dataset).name
    if sub.is_dir():
        return sub
    if n_datasets == 1:
        return ext.dir
    raise FileNotFoundError(f"external method {ext.name!r}: no folder {sub} (a study with several datasets needs one subfolder per dataset)")


def check_external_folder(ext: ExternalMethod, datasets: list[str], folders: dict[str, Path], scale: int,
                          n_datasets: int) -> str | None:
    """Names and sizes of an external method's images against each dataset's HR; None if fine.

    Only image headers are read here; a file whose data is damaged fails when its stimulus is
    generated, with the error recorded on that stimulus.
    """
    if not ext.dir.is_dir():
        return f"external method {ext.name!r}: folder {ext.dir} does not exist"
    for ds in datasets:
        try:
            folder = external_folder_for(ext, ds, n_datasets)
        except FileNotFoundError as exc:
            return str(exc)
        files = image_files(folder)
        dataset = find_dataset(folders[ds], None, scale)
        for pair in dataset:
            path = files.get(pair.name)
            if path is None:
                return f"external method {ext.name!r}: no image for {ds}/{pair.name} in {folder}"
            try:
                hr_size, sr_size = image_size(pair.hr_path), image_size(path)
            except ImageError as exc:
                return f"external method {ext.name!r}: {exc}"
            if hr_size != sr_size:
                return (f"external method {ext.name!r}: {path} is {sr_size[0]}x{sr_size[1]} but the HR image "
                        f"{pair.hr_path.name} is {hr_size[0]}x{hr_size[1]}")
    return None


def load_study_file(path: str | Path, *, datasets_root: Path | None, check_datasets: bool = True) -> StudyConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StudyFileError(str(path), None, None, "no such file") from None
    except UnicodeDecodeError as exc:
        raise StudyFileError(str(path), None, None, f"not UTF-8 text ({exc})") from None
    return parse_study_file(text, str(path), datasets_root=datasets_root, base_dir=path.resolve().parent,
                            check_datasets=check_datasets)
