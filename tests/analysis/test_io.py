"""analysis.io: the ratings CSV (validation with line numbers, round trip) and the SUREAL dataset file."""

from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np
import pandas as pd
import pytest

from analysis import io as aio
from analysis import planning


def _read(text: str) -> pd.DataFrame:
    return aio.read_ratings_csv(io.StringIO(text))


def _errors(text: str) -> dict[int, str]:
    with pytest.raises(aio.RatingsFileError) as info:
        _read(text)
    return {e.line: e.reason for e in info.value.errors}


def test_valid_file_is_typed():
    frame = _read(
        "rater,dataset,image,method,score,created_at\n"
        "alice,Set5,img_001,bicubic,2,2024-05-01T10:00:00Z\n"
        " bob , Set5 ,img_001,hr,5,\n"
    )
    assert list(frame.columns) == ["rater_id", "dataset", "image", "method", "score", "created_at", "line"]
    assert frame["rater_id"].tolist() == ["alice", "bob"] and frame["dataset"].tolist() == ["Set5", "Set5"]
    assert frame["score"].tolist() == [2, 5] and frame["score"].dtype.kind == "i"
    assert frame["created_at"].iloc[0] == pd.Timestamp("2024-05-01T10:00:00Z") and pd.isna(frame["created_at"].iloc[1])
    assert frame["line"].tolist() == [2, 3]


def test_every_malformed_row_is_reported_with_its_line_number():
    text = (
        "rater,dataset,image,method,score,created_at,kind,expected_score\n"  # 1
        "a,Set5,img_001,bicubic,3,,,\n"  # 2 ok
        "a,Set5,img_001,bicubic,4,,,\n"  # 3 duplicate of 2
        "a,Set5,img_002,bicubic,6,,,\n"  # 4 score out of range
        "a,Set5,img_003,bicubic,4.0,,,\n"  # 5 not an integer
        ",Set5,img_004,bicubic,3,,,\n"  # 6 empty rater
        "a,Set5,img_005,bicubic\n"  # 7 too few fields
        '"b","Set5","img\n_006","hr",5,,,\n'  # 8-9: a quoted field spanning two lines (valid)
        "b,Set5,img_007,hr,five,,,\n"  # 10 not an integer
        "b,Set5,img_008,hr,5,now,,\n"  # 11 not an ISO timestamp (pandas alone would take "now")
        "b,Set5,img_001,hr,5,,repeat,\n"  # 12 repeat without a test record
        "b,cal,g1,nearest,1,,gold,\n"  # 13 gold without expected score
        "b,Set5,img_009,hr,3,,retest,\n"  # 14 unknown kind
        "\n"  # 15 blank: ignored
        "b,Set5,img_010,hr,5,,,\n"  # 16 ok
        "a,Set5,img_001,bicubic,2,,repeat,\n"  # 17 ok: a marked repeat of line 2
        "a,Set5,img_001,bicubic,2,,repeat,\n"  # 18 duplicate repeat
    )
    errors = _errors(text)
    assert sorted(errors) == [3, 4, 5, 6, 7, 10, 11, 12, 13, 14, 18]
    assert "duplicate" in errors[3] and "line 2" in errors[3]
    assert "'6' is not an integer from 1 to 5" in errors[4]
    assert "'4.0'" in errors[5]
    assert "empty field(s) rater" in errors[6]
    assert "expected 8 fields, found 4" in errors[7]
    assert "'five'" in errors[10]
    assert "created_at" in errors[11]
    assert "no test record" in errors[12]
    assert "expected_score" in errors[13]
    assert "kind 'retest'" in errors[14]
    assert "duplicate repeat" in errors[18] and "line 17" in errors[18]


def test_error_message_lists_every_problem():
    with pytest.raises(aio.RatingsFileError) as info:
        _read("rater,dataset,image,method,score\na,D,i,m,0\na,D,j,m,9\n")
    message = str(info.value)
    assert "2 problem(s)" in message and "line 2:" in message and "line 3:" in message
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("header", "needle"),
    [
        ("rater,dataset,image,score", "lacks required column(s) method"),
        ("rater,dataset,image,method,score,scroe", "unknown column(s) 'scroe'"),
        ("rater,dataset,image,method,score,score", "repeated column(s) score"),
    ],
)
def test_header_problems_are_line_one(header, needle):
    errors = _errors(header + "\na,D,i,m,3\n")
    assert list(errors) == [1] and needle in errors[1]


def test_empty_file_and_byte_order_mark(tmp_path):
    assert _errors("") == {1: "empty file: no header"}
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffrater,dataset,image,method,score\r\na,D,i,m,3\r\n".encode())
    frame = aio.read_ratings_csv(path)
    assert frame["rater_id"].tolist() == ["a"] and frame["line"].tolist() == [2]
    bad = tmp_path / "bad.csv"
    bad.write_text("rater,dataset,image,method,score\na,D,i,m,x\n")
    with pytest.raises(aio.RatingsFileError, match=r"bad\.csv: 1 problem"):
        aio.read_ratings_csv(bad)


def test_round_trip_through_the_csv_format(small_study):
    ratings, _ = small_study
    text = aio.ratings_csv_frame(ratings).to_csv(index=False)
    assert text.splitlines()[0] == "rater,dataset,image,method,score,created_at,kind,expected_score"
    back = _read(text)
    assert back["line"].tolist() == list(range(2, len(ratings) + 2))
    for col in ("dataset", "image", "method", "score", "kind"):
        assert back[col].tolist() == ratings[col].tolist()
    assert back["rater_id"].tolist() == ratings["rater_id"].tolist()
    np.testing.assert_array_equal(back["expected_score"].to_numpy(), ratings["expected_score"].to_numpy())
    assert (back["created_at"] - ratings["created_at"]).abs().max() < pd.Timedelta("1us")
    plain = ratings[ratings["kind"] == "test"].drop(columns=["kind", "expected_score", "created_at"])
    assert aio.ratings_csv_frame(plain).columns.tolist() == ["rater", "dataset", "image", "method", "score"]


def _load(text: str) -> dict:
    namespace: dict = {}
    exec(compile(text, "sureal_dataset.py", "exec"), namespace)  # noqa: S102 - our own generated file
    return namespace


def test_sureal_dataset_text_structure(small_study, small_stimuli):
    ratings, _ = small_study
    ns = _load(aio.sureal_dataset_text(ratings, small_stimuli, dataset_name="study"))
    assert ns["dataset_name"] == "study"
    refs, dis = ns["ref_videos"], ns["dis_videos"]
    assert [r["content_id"] for r in refs] == list(range(12))  # 2 datasets x 6 images
    assert [d["asset_id"] for d in dis] == list(range(48))
    content = {r["content_id"]: r["content_name"] for r in refs}
    test = ratings[ratings["kind"] == "test"].set_index(["dataset", "image", "method", "rater_id"])["score"]
    repeats = ratings[ratings["kind"] == "repeat"].set_index(["dataset", "image", "method", "rater_id"])["score"]
    files = small_stimuli.set_index(["dataset", "image", "method"])["file"]
    for d in dis:
        assert content[d["content_id"]] == f"{d['dataset']}/{d['image']}"
        assert d["path"] == files[(d["dataset"], d["image"], d["method"])]
        assert len(d["os"]) == 12
        for rater, value in d["os"].items():
            first = test[(d["dataset"], d["image"], d["method"], rater)]
            key = (d["dataset"], d["image"], d["method"], rater)
            assert value == ([first, repeats[key]] if key in repeats.index else first)
    hr_ref = next(r for r in refs if r["content_name"] == "Set5/img_001")
    assert hr_ref["path"] == files[("Set5", "img_001", "hr")]


def test_sureal_dataset_text_sparse_design_with_odd_names():
    # Assets rated by different numbers of raters, names with quotes, backslashes and accents,
    # fractional scores and a repeat: each asset must hold exactly its own raters' scores (an
    # off-by-one between assets shifts them), every name must survive exec, and the repeat follows
    # its first score.
    rng = np.random.default_rng(11)
    raters, images = ["r'1", 'r"2', "r\\3", "r\u00e94"], ["a'", "b\\", "c"]
    rows = [(r, "D", im, m, float(rng.integers(1, 6)) if k % 3 else 2.5, "test")
            for k, (r, im, m) in enumerate((r, im, m) for r in raters for im in images for m in ("x", "y"))
            if rng.random() < 0.6]
    rows.append((rows[0][0], *rows[0][1:4], 1.0, "repeat"))
    frame = pd.DataFrame(rows, columns=["rater_id", "dataset", "image", "method", "score", "kind"])
    dis = _load(aio.sureal_dataset_text(frame))["dis_videos"]
    got = {(d["image"], d["method"], rater): value for d in dis for rater, value in d["os"].items()}
    expected = {(im, m, r): score for r, _, im, m, score, kind in rows if kind == "test"}
    first = rows[0]
    expected[(first[2], first[3], first[0])] = [first[4], 1.0]
    assert got == expected
    assert [(d["image"], d["method"]) for d in dis] == sorted({(im, m) for _, _, im, m, _, _ in rows})


def test_sureal_reads_the_file(small_study, tmp_path):
    sureal_model = pytest.importorskip("sureal.subjective_model")
    from sureal.dataset_reader import RawDatasetReader
    from sureal.tools.misc import import_python_file

    ratings, _ = small_study
    path = tmp_path / "dataset.py"
    path.write_text(aio.sureal_dataset_text(ratings))
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reader = RawDatasetReader(import_python_file(str(path)))
        result = sureal_model.MosModel(reader).run_modeling()
    # SUREAL reads a list of scores as repeated observations, each counted once in its plain MOS.
    rows = ratings[ratings["kind"] != "gold"]
    expected = rows.groupby(["dataset", "image", "method"])["score"].mean().to_numpy()
    np.testing.assert_allclose(result["quality_scores"], expected, rtol=1e-12)


def test_simulated_files_validate(tmp_path):
    ratings = planning.simulate_study({"D": {"a": 2.0}}, n_raters=3, n_images=2, seed=0, n_repeats=1, n_gold=2)
    path = tmp_path / "ratings.csv"
    aio.ratings_csv_frame(ratings).to_csv(path, index=False)
    assert len(aio.read_ratings_csv(path)) == len(ratings)


def test_negative_response_time_is_an_error_naming_its_line():
    errors = _errors(
        "rater,dataset,image,method,score,response_ms\n"
        "a,Set5,img_001,bicubic,3,1200\n"
        "a,Set5,img_002,bicubic,3,-5\n"
    )
    assert list(errors) == [3] and "response_ms '-5' is not a non-negative number" in errors[3]


def test_response_times_above_an_hour_are_missing_with_a_warning():
    text = (
        "rater,dataset,image,method,score,response_ms\n"
        "a,Set5,img_001,bicubic,3,1200\n"
        f"a,Set5,img_002,bicubic,4,{aio.MAX_RESPONSE_MS}\n"  # exactly an hour: kept
        f"a,Set5,img_003,bicubic,2,{aio.MAX_RESPONSE_MS + 1}\n"
        "a,Set5,img_004,bicubic,5,86400000\n"
        "a,Set5,img_005,bicubic,5,\n"
    )
    with pytest.warns(aio.RatingsFileWarning, match=r"2 response_ms value\(s\) above .* \(line\(s\) 4, 5\)"):
        frame = _read(text)
    assert frame["response_ms"].iloc[:2].tolist() == [1200.0, float(aio.MAX_RESPONSE_MS)]
    assert frame["response_ms"].iloc[2:].isna().all()
    assert frame.attrs["response_ms_dropped"] == 2
    assert frame["response_ms"].median() < aio.MAX_RESPONSE_MS  # no longer dominated by the absurd ones
    assert frame["score"].tolist() == [3, 4, 2, 5, 5]  # the ratings themselves are kept


def test_plausible_response_times_give_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frame = _read("rater,dataset,image,method,score,response_ms\na,Set5,img_001,bicubic,3,900\n")
    assert frame.attrs["response_ms_dropped"] == 0


class _CountedLines:
    """A ratings file that counts the lines read from it (``n`` test records after the header)."""

    name = "counted.csv"

    def __init__(self, n: int):
        self.n, self.read = n, 0

    def __iter__(self):
        return self

    def __next__(self) -> str:
        if self.read > self.n:
            raise StopIteration
        self.read += 1
        if self.read == 1:
            return "rater,dataset,image,method,score\n"
        return f"r{self.read % 7},Set5,img_{self.read:06d},bicubic,{1 + self.read % 5}\n"


def test_the_validator_streams_the_file_in_chunks():
    """Catches a validator that reads every record before it yields any (the old read_ratings_csv held
    them all, then a frame of them all), and chunks larger than asked for."""
    source = _CountedLines(10_000)
    scan = aio.RatingsScan(source)
    chunks = aio.validated_chunks(scan, chunk_rows=100)
    first = next(chunks)
    assert len(first) == 100 and source.read <= 102  # the header, 100 records, at most one more
    sizes = [len(first)] + [len(chunk) for chunk in chunks]
    assert max(sizes) == 100 and sum(sizes) == 10_000 == scan.records
    scan.check()  # valid: nothing raised
    assert list(first.columns) == ["rater_id", "dataset", "image", "method", "score", "line"]


def test_checks_across_records_span_chunks():
    """Catches duplicate and repeat checks that only look within a chunk (state reset per chunk)."""
    text = ("rater,dataset,image,method,score,kind\n"
            "a,Set5,img_001,bicubic,3,\n"        # line 2
            "a,Set5,img_002,bicubic,3,repeat\n"  # line 3: its test record comes later, on line 6
            "b,Set5,img_001,bicubic,3,\n"
            "a,Set5,img_001,bicubic,9,\n"        # line 5: duplicate of line 2, and a bad score
            "a,Set5,img_002,bicubic,4,test\n"
            "b,Set5,img_003,bicubic,4,repeat\n")  # line 7: no test record anywhere
    scan = aio.RatingsScan(io.StringIO(text))
    assert [len(c) for c in aio.validated_chunks(scan, chunk_rows=2)] == [2, 1, 2]  # line 5 is left out
    with pytest.raises(aio.RatingsFileError) as info:
        scan.check()
    errors = {e.line: e.reason for e in info.value.errors}
    assert sorted(errors) == [5, 7]
    assert errors[5].startswith("score '9' is not an integer from 1 to 5; duplicate test rating of rater 'a'")
    assert "(first on line 2)" in errors[5]
    assert errors[7] == "repeat of Set5/img_003/bicubic by rater 'b' has no test record"
    # The whole-file reader gives the same problems from the same validator.
    assert _errors(text) == errors
