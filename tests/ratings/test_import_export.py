"""import_ratings (all or nothing, errors by line) and export_report (every file, right numbers)."""

from __future__ import annotations

import csv
import io
import json

import pandas as pd
import pytest
from django.core.management import CommandError, call_command

from analysis.io import RatingsFileError, RatingsFileWarning, ratings_csv_frame
from analysis.planning import simulate_study
from analysis.stats import mos_table
from ratings import reports, studies
from ratings.export import ratings_frame
from ratings.importing import import_ratings
from ratings.models import Rating, Stimulus, Study
from ratings.study_file import parse_study_file

pytestmark = pytest.mark.django_db

TRUE_MOS = {"Set5": {"nearest": 1.3, "bicubic": 2.0, "srresnet-mse": 3.4, "srgan-vgg54": 3.6, "hr": 4.3}}


@pytest.fixture
def simulated_csv(tmp_path):
    ratings = simulate_study(TRUE_MOS, n_raters=6, n_images=5, seed=3, n_repeats=2, n_gold=2)
    path = tmp_path / "lab.csv"
    ratings_csv_frame(ratings).to_csv(path, index=False)
    return path, ratings


def run(command, *args):
    out = io.StringIO()
    call_command(command, *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_import_creates_the_study_and_keeps_every_rating(simulated_csv, media_root):
    path, ratings = simulated_csv
    out = run("import_ratings", str(path), "--study", "lab")
    assert f"created study lab: {len(ratings)} ratings from 6 raters" in out
    study = Study.objects.get(name="lab")
    assert Rating.objects.filter(rater__study=study).count() == len(ratings)
    back = ratings_frame(study)
    # The same MOS table from what was stored as from the file.
    pd.testing.assert_frame_equal(mos_table(back), mos_table(ratings))
    assert set(back["kind"]) == {"test", "repeat", "gold"}
    roles = dict(study.datasets.values_list("name", "role"))
    assert roles == {"Set5": "test", "calibration": "calibration"}  # gold-only set: not in the results
    assert (back["created_at"].dt.year == 2017).all()  # the file's timestamps, not the import time
    # Images of a known dataset are linked to their HR files, so their stimuli can be made later.
    s = Stimulus.objects.get(study=study, image__name="img_003", condition__name="bicubic")
    assert s.image.hr_path.endswith("img_003_SRF_4_HR.png") and s.state == Stimulus.State.PENDING


def test_a_malformed_row_imports_nothing_and_names_its_line(simulated_csv, media_root):
    path, _ = simulated_csv
    lines = path.read_text().splitlines()
    fields = lines[7].split(",")
    fields[4] = "7"  # score out of range on line 8 of the file
    lines[7] = ",".join(fields)
    lines[12] = lines[12].replace("Set5", "")  # an empty dataset on line 13
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(CommandError) as info:
        run("import_ratings", str(path), "--study", "lab")
    message = str(info.value)
    assert "nothing was imported" in message
    assert "line 8:" in message and "line 13:" in message
    assert not Study.objects.filter(name="lab").exists()
    assert Rating.objects.count() == 0


def test_a_latin1_file_is_refused_naming_the_file_and_line(simulated_csv, media_root):
    """Catches a UnicodeDecodeError traceback for a CSV a spreadsheet saved as Latin-1."""
    path, _ = simulated_csv
    lines = path.read_text().splitlines()
    lines[5] = lines[5].replace(lines[5].split(",")[0], "Jos\u00e9", 1)
    path.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    with pytest.raises(CommandError) as info:
        run("import_ratings", str(path), "--study", "lab")
    message = str(info.value)
    assert str(path) in message and "line 6:" in message and "not UTF-8" in message and "0xe9" in message
    assert not Study.objects.filter(name="lab").exists()


def test_import_into_an_existing_study_checks_every_stimulus(simulated_csv, datasets_root, media_root, weights_dir):
    path, ratings = simulated_csv
    text = """name = "lab"
seed = 1
datasets = ["Set5"]
methods = ["nearest", "bicubic", "hr"]
[rating]
calibration_images = 0
"""
    studies.create_or_resume_study(parse_study_file(text, "lab.toml", datasets_root=datasets_root))
    with pytest.raises(CommandError, match=r"line \d+: study 'lab' has no stimulus Set5/img_001 \[srresnet-mse\]"):
        run("import_ratings", str(path), "--study", "lab")
    assert Rating.objects.count() == 0
    # Only the methods the study has: accepted.
    subset = ratings[ratings["method"].isin(["nearest", "bicubic", "hr"]) & (ratings["kind"] != "gold")]
    ratings_csv_frame(subset).to_csv(path, index=False)
    run("import_ratings", str(path), "--study", "lab")
    assert Rating.objects.count() == len(subset)
    # The same raters again: refused, nothing added.
    with pytest.raises(CommandError, match="already has ratings"):
        run("import_ratings", str(path), "--study", "lab")
    assert Rating.objects.count() == len(subset)


def test_export_report_writes_every_file(simulated_csv, tmp_path, media_root, weights_dir):
    path, ratings = simulated_csv
    ratings = ratings[ratings["method"] != "srresnet-mse"]  # fake weights: keep the PSNR plot meaningful
    ratings_csv_frame(ratings).to_csv(path, index=False)
    out = run("import_ratings", str(path), "--study", "lab", "--make-stimuli")
    assert "sent 20 stimuli to be made (done)" in out  # 5 images x 4 methods
    out_dir = tmp_path / "report"
    out = run("export_report", "lab", "--out", str(out_dir), "--n-boot", "200")
    for name in ("ratings.csv", "mos.csv", "pairwise.csv", "raters.csv", "table2.tex", "report.html"):
        assert (out_dir / name).is_file(), name
    assert "report.html" in out
    mos = pd.read_csv(out_dir / "mos.csv")
    assert list(mos.columns[:7]) == ["dataset", "method", "n", "mos", "std", "ci_low", "ci_high"]
    expected = mos_table(ratings).set_index(["dataset", "method"])["mos"]
    assert mos.set_index(["dataset", "method"])["mos"].to_dict() == pytest.approx(expected.to_dict())
    pairwise = pd.read_csv(out_dir / "pairwise.csv")
    assert list(pairwise.columns[:8]) == ["dataset", "method_a", "method_b", "n", "statistic", "p_value", "p_holm", "effect_size"]
    assert len(pairwise) == 6  # 4 methods on Set5: C(4, 2) pairs
    exported = pd.read_csv(out_dir / "ratings.csv")
    assert list(exported.columns[:5]) == ["rater", "dataset", "image", "method", "score"]
    html = (out_dir / "report.html").read_text()
    assert "lab" in html and "Wilcoxon" in html
    # The stimuli were made, so Table 2 has PSNR and the perception-distortion plot exists.
    table2 = (out_dir / "table2.tex").read_text()
    assert "28.42" in table2 and "26.25" in table2  # bicubic and nearest on Set5
    assert any(p.name.startswith("perception_distortion") for p in out_dir.iterdir())
    # The exported ratings.csv imports again, to the same MOS.
    run("import_ratings", str(out_dir / "ratings.csv"), "--study", "lab-copy")
    pd.testing.assert_frame_equal(mos_table(ratings_frame(Study.objects.get(name="lab-copy"))), mos_table(ratings))


def test_exported_csv_text_cells_cannot_run_as_formulas(simulated_csv, media_root, tmp_path):
    """Catches cells beginning with = + - @ written verbatim (OWASP CSV injection)."""
    path, _ = simulated_csv
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    first = frame["rater"].iloc[0]
    frame["rater"] = frame["rater"].replace({first: '=HYPERLINK("http://evil.example","x")'})
    frame["dataset"] = "-lab"  # not a known dataset: its image names are not checked against files
    frame["image"] = frame["image"].str.replace("img_001", "@img_001")
    frame.to_csv(path, index=False)
    run("import_ratings", str(path), "--study", "lab")
    out_dir = tmp_path / "report"
    run("export_report", "lab", "--out", str(out_dir), "--n-boot", "50")
    for name in ("ratings.csv", "raters.csv", "mos_per_image.csv"):
        with (out_dir / name).open(newline="") as handle:
            for row in csv.reader(handle):
                assert not any(cell.startswith(("=", "+", "@")) for cell in row), (name, row)
    exported = pd.read_csv(out_dir / "ratings.csv")
    assert "'=HYPERLINK(\"http://evil.example\",\"x\")" in set(exported["rater"])
    assert "'@img_001" in set(exported["image"]) and set(exported["dataset"]) == {"'-lab"}
    assert (pd.read_csv(out_dir / "mos.csv")["ci_low"] < 5).all()  # numbers stay numbers


def test_export_of_a_study_without_ratings(media_root, datasets_root):
    studies.create_or_resume_study(parse_study_file(
        'name = "empty"\nseed = 1\ndatasets = ["Set5"]\nmethods = ["bicubic"]\n[rating]\ncalibration_images = 0\n',
        "e.toml", datasets_root=datasets_root))
    with pytest.raises(CommandError, match="no ratings yet"):
        run("export_report", "empty", "--out", "/tmp/unused")
    with pytest.raises(CommandError, match="no study named 'nope'"):
        run("export_report", "nope", "--out", "/tmp/unused")


def test_dashboard_links_to_the_report(simulated_csv, admin_client, media_root):
    path, _ = simulated_csv
    run("import_ratings", str(path), "--study", "lab")
    admin_client.post("/studies/lab/rebuild-report/")  # report files are served from the last build
    page = admin_client.get("/studies/lab/").content.decode()
    assert "/studies/lab/report/report.html" in page
    report = admin_client.get("/studies/lab/report/report.html")
    assert report.status_code == 200
    assert b"lab" in b"".join(report.streaming_content)
    assert admin_client.get("/studies/lab/report/../../etc/passwd").status_code == 404


def test_a_report_build_is_made_again_when_a_stimulus_changes(simulated_csv, media_root):
    path, _ = simulated_csv
    run("import_ratings", str(path), "--study", "lab")
    study = Study.objects.get(name="lab")
    out = reports.build(study).folder
    html, stamp = out / "report.html", media_root / "reports" / "lab" / "build.json"
    made = html.stat().st_mtime_ns
    assert reports.build(study).folder == out and html.stat().st_mtime_ns == made  # nothing changed: reused
    assert "31.23" not in (out / "table2.tex").read_text()
    # The bicubic stimuli are made and measured (no rating changes): Table 2 must show their PSNR.
    Stimulus.objects.filter(study=study, condition__name="bicubic").update(state=Stimulus.State.DONE, psnr_y=31.234,
                                                                          ssim_y=0.9)
    out = reports.build(study).folder
    assert "31.23" in (out / "table2.tex").read_text()
    assert json.loads(stamp.read_text())["fingerprint"] == reports._fingerprint(study)
    assert not [p.name for p in stamp.parent.iterdir() if p.name.endswith(".tmp")]  # the record was renamed into place
    # A damaged record (e.g. from an older version that wrote it in place) only means: make it again.
    stamp.write_text('{"ratings": 3')
    again = reports.build(study).folder
    assert again != out and json.loads(stamp.read_text())["fingerprint"] == reports._fingerprint(study)


@pytest.mark.parametrize("name", ["my study", "lab.v2", "../etc", "lab/x", "läb", "x" * 101])
def test_import_refuses_a_study_name_that_is_not_a_slug(simulated_csv, media_root, name):
    path, _ = simulated_csv
    with pytest.raises(CommandError, match=r"nothing was imported\. study name .* (letters, digits, '-' and '_'|too long)"):
        run("import_ratings", str(path), "--study", name)
    assert not Study.objects.exists() and Rating.objects.count() == 0


def test_imported_response_times_above_an_hour_are_stored_as_missing(tmp_path, media_root):
    path = tmp_path / "times.csv"
    path.write_text("rater,dataset,image,method,score,response_ms\n"
                    "a,Set5,img_001,bicubic,3,1500\n"
                    "a,Set5,img_002,bicubic,4,7200000\n")
    with pytest.warns(RatingsFileWarning, match=r"1 response_ms value\(s\) above"):
        result = import_ratings(path, "timed_study-1")
    assert result.response_ms_dropped == 1 and result.ratings == 2
    stored = dict(Rating.objects.values_list("stimulus__image__name", "response_ms"))
    assert stored == {"img_001": 1500, "img_002": None}
    path.write_text("rater,dataset,image,method,score,response_ms\nb,Set5,img_001,bicubic,3,-40\n")
    with pytest.raises(RatingsFileError, match=r"line 2: response_ms '-40' is not a non-negative number"):
        import_ratings(path, "timed_study-1")
    assert Rating.objects.count() == 2


def _interleaved_csv(path):
    """Two raters interleaved, each rater's records given in reverse ``position`` order."""
    lines = ["rater,dataset,image,method,score,position"]
    for k in range(4):
        for rater in ("a", "b"):
            lines.append(f"{rater},Set5,img_00{k + 1},bicubic,{k + 1},{4 - k}")
    path.write_text("\n".join(lines) + "\n")


def test_import_streams_in_batches_and_keeps_each_raters_order(tmp_path, media_root, monkeypatch):
    """Catches a writer that takes the file whole (chunks above the batch), and item positions counted
    per chunk or in file order instead of by the file's position column across chunks."""
    from ratings import importing
    from ratings.models import SessionItem

    monkeypatch.setattr(importing, "IMPORT_BATCH", 3)
    sizes = []

    def counted(scan, chunk_rows):
        for chunk in real(scan, chunk_rows):
            sizes.append(len(chunk))
            yield chunk

    real = importing.validated_chunks
    monkeypatch.setattr(importing, "validated_chunks", counted)
    path = tmp_path / "chunked.csv"
    _interleaved_csv(path)
    result = import_ratings(path, "chunked")
    assert result.ratings == 8 and result.raters == 2
    assert max(sizes) == 3 and sum(sizes) == 16  # two passes over 8 records, 3 at a time
    for rater in ("a", "b"):
        items = SessionItem.objects.filter(session__rater__label=rater).order_by("position")
        assert [i.position for i in items] == [0, 1, 2, 3]
        assert [i.stimulus.image.name for i in items] == ["img_004", "img_003", "img_002", "img_001"]
        assert [i.rating.score for i in items] == [4, 3, 2, 1]


def test_a_file_changed_between_the_passes_imports_nothing(tmp_path, media_root, monkeypatch):
    """Catches a writing pass that trusts the validating pass: a line made bad after it is not stored."""
    from ratings import importing

    path = tmp_path / "changing.csv"
    _interleaved_csv(path)
    real = importing._ImportPlan.item_positions

    def then_change_the_file(plan):
        with open(path, "a") as fh:
            fh.write("c,Set5,img_001,bicubic,9,1\n")
        return real(plan)

    monkeypatch.setattr(importing._ImportPlan, "item_positions", then_change_the_file)
    with pytest.raises(RatingsFileError, match=r"line 10: score '9'"):
        import_ratings(path, "changing")
    assert not Study.objects.filter(name="changing").exists() and Rating.objects.count() == 0
