"""The study file: shipped examples parse; every kind of mistake names its key and line."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from ratings.study_file import StudyFileError, load_study_file, parse_study_file
from sr_models.methods import NETWORK_METHODS, get_upscaler
from tests.conftest import REPO


def parse(text, datasets_root, **kw):
    return parse_study_file(text, "s.toml", datasets_root=datasets_root, **kw)


def test_demo_study_file(datasets_root):
    config = load_study_file(REPO / "studies" / "demo.toml", datasets_root=datasets_root)
    assert config.name == "demo" and config.datasets == ("Set5",)
    assert config.methods["Set5"] == ("nearest", "bicubic", "srresnet-mse", "srgan-vgg54", "hr")
    assert config.rating.repeat_method == "bicubic" and config.rating.repeat_images == 2


def test_paired_demo_study_file(datasets_root):
    """studies/demo_pairwise.toml (the README's paired example) is the issue's design."""
    config = load_study_file(REPO / "studies" / "demo_pairwise.toml", datasets_root=datasets_root)
    assert config.protocol == "pairwise" and config.pairwise.design == "full"
    assert config.methods["Set5"] == ("bicubic", "srresnet-mse", "srgan-vgg54", "hr")


@pytest.mark.parametrize("name", ["demo.toml", "demo_pairwise.toml"])
def test_demo_study_names_only_methods_whose_weights_ship(datasets_root, name):
    # bin/demo is the README's first command: on a fresh clone every network it names must load.
    config = load_study_file(REPO / "studies" / name, datasets_root=datasets_root)
    networks = [m for m in config.methods["Set5"] if m in NETWORK_METHODS]
    assert networks
    for method in networks:
        get_upscaler(method, weights_dir=REPO / "sr_models" / "weights", device="cpu")  # raises if missing/corrupt


def test_paper_study_file_has_the_papers_design(datasets_root):
    config = load_study_file(REPO / "studies" / "srgan_paper.toml", datasets_root=datasets_root)
    assert config.datasets == ("Set5", "Set14", "BSD100")
    assert len(config.methods["Set5"]) == 8 and config.methods["Set5"] == config.methods["Set14"]
    assert config.methods["BSD100"] == ("nearest", "bicubic", "srresnet-mse", "srgan-vgg54", "hr")
    assert config.rating.raters == 26 and config.rating.calibration_images == 20
    assert (config.rating.repeat_dataset, config.rating.repeat_images) == ("BSD100", 10)


GOOD = """name = "x"
seed = 1
datasets = ["Set5"]
methods = ["nearest", "bicubic"]
"""


@pytest.mark.parametrize(
    "text, key, line, fragment",
    [
        (GOOD.replace('methods = ["nearest", "bicubic"]', 'methods = ["nearest",\n  "lanczos"]'), "methods", 5, "unknown method 'lanczos'"),
        (GOOD.replace('datasets = ["Set5"]', 'datasets = ["Set5", "Urban100"]'), "datasets", 3, "unknown dataset 'Urban100'"),
        (GOOD + "dataset = 3\n", "dataset", 5, "unknown key"),
        (GOOD.replace("seed = 1", 'seed = "one"'), "seed", 2, "non-negative integer"),
        (GOOD.replace('name = "x"', 'name = "My Study"'), "name", 1, "lowercase"),
        (GOOD + "\n[rating]\nraters = -1\n", "rating.raters", 7, "non-negative integer"),
        (GOOD + '\n[rating]\nassignment = "random"\n', "rating.assignment", 7, '"all"'),
        (GOOD + '\n[rating]\nassignment = "balanced"\n', "rating.assignment", 7, "ratings_per_stimulus"),
        (GOOD + '\n[rating.repeats]\ndataset = "Set5"\nmethod = "hr"\nimages = 2\n', "rating.repeats.method", 8, "not rated on Set5"),
        (GOOD + '\n[methods_per_dataset]\nSet14 = ["bicubic"]\n', "methods_per_dataset.Set14", 7, "not in datasets"),
        (GOOD.replace('methods = ["nearest", "bicubic"]', 'methods = ["nearest", "nearest"]'), "methods", 4, "listed twice"),
        (GOOD.replace("seed = 1\n", ""), "seed", None, "missing"),
        (GOOD + "scale = 3\n", "scale", 5, "only 4x"),
        # Bounds (catches accepting raters = 10**9 and items_per_rater = 10**11).
        (GOOD + "\n[rating]\nraters = 1000000000\n", "rating.raters", 7, "at most 10,000"),
        (GOOD + '\n[rating]\nassignment = "balanced"\nratings_per_stimulus = 3\nitems_per_rater = 100000000000\n',
         "rating.items_per_rater", 9, "at most 10,000"),
        (GOOD + "\n[rating]\ncalibration_images = 201\n", "rating.calibration_images", 7, "at most 200"),
        (GOOD + '\n[rating.repeats]\ndataset = "Set5"\nmethod = "bicubic"\nimages = 5000\n', "rating.repeats.images", 9,
         "at most 1,000"),
        # Pinned before the redesign (issue 16 item 0): each row kills a surviving mutant.
        (GOOD.replace('datasets = ["Set5"]', 'datasets = ["Set5", "Set14", "Set5"]'), "datasets", 3,
         "lists a dataset twice"),  # catches the duplicate-dataset check removed
        (GOOD.replace("seed = 1", "seed = -1"), "seed", 2, "non-negative integer"),  # catches no ``0 <=``
        (GOOD + '\n[rating.repeats]\ndataset = "Set5"\nmethod = "bicubic"\nimages = -1\n', "rating.repeats.images", 9,
         "positive integer"),  # catches ``images == 0`` for ``images < 1``
        (GOOD + '\n[rating.repeats]\ndataset = "Set5"\nmethod = "bicubic"\nimages = 0\n', "rating.repeats.images", 9,
         "positive integer"),
    ],
)
def test_mistakes_name_key_and_line(datasets_root, text, key, line, fragment):
    with pytest.raises(StudyFileError) as info:
        parse(text, datasets_root)
    err = info.value
    assert err.key == key
    assert err.line == line
    assert fragment in str(err)
    assert str(err).startswith("s.toml" + (f", line {line}" if line else ""))


def test_counts_at_their_bounds_are_accepted(datasets_root):
    """Catches ``>=`` for ``>`` in the bounds (200 calibration images, the BSD200 set, is allowed), a
    bound raised past its value (201 is refused above), and seed 0 refused."""
    from ratings.study_file import LIMITS

    text = GOOD.replace("seed = 1", "seed = 0") + (
        f"\n[rating]\ncalibration_images = {LIMITS['calibration_images']}\nraters = {LIMITS['raters']}\n"
        f"gold_items = {LIMITS['gold_items']}\n")
    config = parse(text, datasets_root)
    assert config.seed == 0
    assert (config.rating.calibration_images, config.rating.raters, config.rating.gold_items) == (200, 10_000, 200)
    with pytest.raises(StudyFileError, match="at most 200 .got 201"):
        parse(text.replace("calibration_images = 200", "calibration_images = 201"), datasets_root)


def test_gaps_the_mutmut_sample_found(datasets_root, tmp_path):
    """Each case kills a survivor of the sampled mutmut run (docs/mutation_testing.md)."""
    # seed 2**63 (tomllib reads any size) is refused: catches the bound 3**63 (the database's bigint overflows).
    with pytest.raises(StudyFileError, match="non-negative integer"):
        parse(GOOD.replace("seed = 1", f"seed = {2**63}"), datasets_root)
    assert parse(GOOD.replace("seed = 1", f"seed = {2**63 - 1}"), datasets_root).seed == 2**63 - 1
    # A key missing from its table points at the table's header line: catches the table's end instead.
    with pytest.raises(StudyFileError) as info:
        parse(GOOD + '\n[rating.repeats]\nmethod = "bicubic"\nimages = 2\n', datasets_root)
    assert (info.value.key, info.value.line) == ("rating.repeats.dataset", 6)
    # The whole message of a missing key: catches its text mutated.
    with pytest.raises(StudyFileError) as info:
        parse(GOOD.replace("seed = 1\n", ""), datasets_root)
    assert str(info.value) == "s.toml, key 'seed': missing (required)"
    # repeats that is not a table is named as such: catches the key mutated.
    with pytest.raises(StudyFileError) as info:
        parse(GOOD + "\n[rating]\nrepeats = 3\n", datasets_root)
    assert (info.value.key, info.value.line) == ("rating.repeats", 7)
    # One repeated image is allowed: catches ``images < 2``.
    one = parse(GOOD + '\n[rating.repeats]\ndataset = "Set5"\nmethod = "bicubic"\nimages = 1\n', datasets_root)
    assert one.rating.repeat_images == 1
    # The repeats method's whole message: catches its text mutated.
    with pytest.raises(StudyFileError) as info:
        parse(GOOD + '\n[rating.repeats]\ndataset = "Set5"\nmethod = "hr"\nimages = 2\n', datasets_root)
    assert info.value.problem == "'hr' is not rated on Set5 (nearest, bicubic)"
    # The defaults: catches calibration_images defaulting to 21, ratings_per_stimulus or items_per_rater to 1.
    rating = parse(GOOD, datasets_root).rating
    assert (rating.calibration_images, rating.gold_items, rating.break_every, rating.raters) == (20, 0, 0, 0)
    assert (rating.assignment, rating.ratings_per_stimulus, rating.items_per_rater) == ("all", 0, 0)


def test_an_external_method_named_twice_needs_one_folder(tmp_path, datasets_root):
    """Catches ``previous.dir == path`` for ``!=``: the same name with two folders, or one folder twice."""
    _external_folder(tmp_path, datasets_root)
    text = GOOD.replace('methods = ["nearest", "bicubic"]', 'methods = ["nearest", {name = "SRCNN", dir = "SRCNN"}]')
    same = text + '\n[methods_per_dataset]\nSet5 = [{name = "SRCNN", dir = "SRCNN"}]\n'
    assert parse(same, datasets_root, base_dir=tmp_path).methods["Set5"] == ("SRCNN",)
    with pytest.raises(StudyFileError, match="given two different folders"):
        parse(same.replace('Set5 = [{name = "SRCNN", dir = "SRCNN"}]', 'Set5 = [{name = "SRCNN", dir = "other"}]'),
              datasets_root, base_dir=tmp_path)


def test_toml_syntax_error_has_its_line(datasets_root):
    with pytest.raises(StudyFileError, match=r"s.toml, line 3: not valid TOML"):
        parse('name = "x"\nseed = 1\ndatasets = ["Set5"\n', datasets_root)


def test_missing_file(tmp_path, datasets_root):
    with pytest.raises(StudyFileError, match="no such file"):
        load_study_file(tmp_path / "nope.toml", datasets_root=datasets_root)


# -- external methods ----------------------------------------------------------------------------
def _external_folder(tmp_path, datasets_root, names=None, size_fix=None):
    folder = tmp_path / "SRCNN"
    folder.mkdir()
    for hr in sorted((datasets_root / "Set5" / "x4").glob("*_HR.png")):
        name = hr.name.split("_SRF")[0]
        if names is not None and name not in names:
            continue
        target = folder / f"{name}_SRF_4_SRCNN.png"
        if size_fix and name == size_fix:
            Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(target)
        else:
            shutil.copy(hr, target)
    return folder


def test_external_folder_is_accepted(tmp_path, datasets_root):
    _external_folder(tmp_path, datasets_root)
    text = GOOD.replace('methods = ["nearest", "bicubic"]', 'methods = ["nearest", {name = "SRCNN", dir = "SRCNN"}]')
    config = parse(text, datasets_root, base_dir=tmp_path)
    assert config.methods["Set5"] == ("nearest", "SRCNN")
    assert config.externals["SRCNN"].dir == (tmp_path / "SRCNN").resolve()


def test_external_folder_with_a_missing_image(tmp_path, datasets_root):
    _external_folder(tmp_path, datasets_root, names={"img_001", "img_002", "img_004", "img_005"})
    text = GOOD.replace('methods = ["nearest", "bicubic"]', 'methods = ["nearest", {name = "SRCNN", dir = "SRCNN"}]')
    with pytest.raises(StudyFileError, match=r"line 4, key 'methods': external method 'SRCNN': no image for Set5/img_003"):
        parse(text, datasets_root, base_dir=tmp_path)


def test_external_folder_with_a_wrongly_sized_image(tmp_path, datasets_root):
    _external_folder(tmp_path, datasets_root, size_fix="img_002")
    text = GOOD.replace('methods = ["nearest", "bicubic"]', 'methods = ["nearest", {name = "SRCNN", dir = "SRCNN"}]')
    with pytest.raises(StudyFileError, match=r"img_002_SRF_4_SRCNN.png is 10x10 but the HR image img_002_SRF_4_HR.png is 288x288"):
        parse(text, datasets_root, base_dir=tmp_path)


def test_external_folder_missing(tmp_path, datasets_root):
    text = GOOD.replace('methods = ["nearest", "bicubic"]', 'methods = [{name = "ESPCN", dir = "nowhere"}]')
    with pytest.raises(StudyFileError, match="folder .*nowhere does not exist"):
        parse(text, datasets_root, base_dir=tmp_path)


def test_several_datasets_need_one_subfolder_each(tmp_path, datasets_root):
    _external_folder(tmp_path, datasets_root)
    text = GOOD.replace('datasets = ["Set5"]', 'datasets = ["Set5", "Set14"]').replace(
        'methods = ["nearest", "bicubic"]', 'methods = ["nearest", {name = "SRCNN", dir = "SRCNN"}]')
    with pytest.raises(StudyFileError, match="one subfolder per dataset"):
        parse(text, datasets_root, base_dir=tmp_path)


def _png_header_only(path, width, height):
    """A PNG whose header claims ``width`` x ``height`` gray pixels (no pixel data needed to open it)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


@pytest.mark.parametrize("side, fragment", [(20000, "far too large"), (12000, "far too large"), (5000, "5000x5000 pixels")])
def test_huge_images_are_refused_naming_the_file(tmp_path, datasets_root, side, fragment):
    """Catches a traceback (Pillow's DecompressionBombError) or 'damaged or truncated' for huge images."""
    folder = tmp_path / "huge"
    folder.mkdir()
    _png_header_only(folder / "big_HR.png", side, side)
    _png_header_only(folder / "big_LR.png", side // 4, side // 4)
    with pytest.raises(StudyFileError) as info:
        parse(GOOD.replace('datasets = ["Set5"]', f'datasets = ["{folder}"]'), datasets_root)
    message = str(info.value)
    assert "big_HR.png" in message and fragment in message and "at most 4096x4096" in message


PAIRED = """name = "pw"
seed = 3
datasets = ["Set5"]
methods = ["bicubic", "srresnet-mse", "srgan-vgg54", "hr"]
protocol = "pairwise"
"""


def test_a_paired_study_file_is_parsed_and_stored_with_its_protocol(datasets_root):
    """The protocol and [pairwise] reach config.to_json() (what Study.pairwise reads back); an ACR
    file keeps its shape with protocol 'acr' and no pairwise table."""
    config = parse(PAIRED + '\n[pairwise]\ndesign = "balanced"\njudgments_per_rater = 12\njudgments_per_pair = 3\n',
                   datasets_root)
    assert config.protocol == "pairwise" and config.pairwise.design == "balanced"
    stored = config.to_json()
    assert stored["protocol"] == "pairwise" and stored["pairwise"]["judgments_per_pair"] == 3
    plain = parse(GOOD, datasets_root).to_json()
    assert plain["protocol"] == "acr" and "pairwise" not in plain


@pytest.mark.parametrize("text, key, line, fragment", [
    (PAIRED.replace('"pairwise"', '"mushra"'), "protocol", 5, "must be one of"),
    (PAIRED + '\n[pairwise]\ndesign = "adaptive"\n', "pairwise.design", 8, "must be one of"),
    (PAIRED + "\n[rating]\ngold_items = 3\n", "rating.gold_items", 8, "sets its sampling in [pairwise]"),
    (PAIRED.replace('"srresnet-mse", "srgan-vgg54", ', ""), "methods", None, "at least two methods"),
    (PAIRED.replace(', "hr"]', "]").replace('"pairwise"', '"2afc-real"'), "methods", None, 'needs "hr"'),
    (GOOD + '\n[pairwise]\ndesign = "full"\n', "pairwise", None, 'not "acr"'),
])
def test_paired_mistakes_name_key_and_line(datasets_root, text, key, line, fragment):
    """Catches a [pairwise] error reported without its table, an ACR-only key accepted in a paired
    study, and a 2afc-real study without the original to compare with."""
    with pytest.raises(StudyFileError) as info:
        parse(text, datasets_root)
    assert info.value.key == key and fragment in str(info.value)
    if line is not None:
        assert info.value.line == line
