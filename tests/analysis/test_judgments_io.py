"""The judgments CSV: read, validated line by line, written back to the same frame."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from analysis.io import RatingsFileError
from analysis.judgments_io import is_judgments_header, judgments_csv_frame, read_judgments_csv

GOOD = """rater,dataset,image,method_a,method_b,choice,kind,expected_choice,left,response_ms,position
r1,Set5,baby,bicubic,srgan-vgg54,srgan-vgg54,,,bicubic,812,1
r1,Set5,baby,nearest,hr,hr,gold,hr,hr,400,2
r2,Set5,bird,srgan-vgg54,bicubic,bicubic,test,,srgan-vgg54,4000000,1
"""


def test_reads_the_tidy_format_and_writes_it_back_unchanged():
    """Catches the empty kind not read as 'test', the hour cap on response times not applied, and an
    export whose columns do not read back."""
    frame = read_judgments_csv(io.StringIO(GOOD))
    assert list(frame["kind"]) == ["test", "gold", "test"]
    assert frame["choice"].tolist() == ["srgan-vgg54", "hr", "bicubic"]
    assert frame["response_ms"].iloc[0] == 812 and np.isnan(frame["response_ms"].iloc[2])
    assert frame["line"].tolist() == [2, 3, 4]
    text = judgments_csv_frame(frame.drop(columns="line")).to_csv(index=False)
    again = read_judgments_csv(io.StringIO(text)).drop(columns="line")
    pd.testing.assert_frame_equal(again, frame.drop(columns="line"))


def test_every_problem_is_reported_with_its_line():
    """One pass lists all problems, each at its line: a choice outside the pair, a method compared
    with itself, a gold judgment without its answer, a replayed position, a bad response time."""
    bad = GOOD + "\n".join([
        "r3,Set5,baby,bicubic,srgan-vgg54,hr,,,,,",
        "r3,Set5,baby,bicubic,bicubic,bicubic,,,,,",
        "r3,Set5,baby,nearest,hr,hr,gold,,,,",
        "r1,Set5,bird,bicubic,hr,hr,,,,,1",
        "r3,Set5,bird,bicubic,hr,hr,,,,-5,",
    ]) + "\n"
    with pytest.raises(RatingsFileError) as caught:
        read_judgments_csv(io.StringIO(bad))
    text = str(caught.value)
    assert "line 5: choice 'hr' is neither method_a 'bicubic' nor method_b 'srgan-vgg54'" in text
    assert "line 6: method_a and method_b are both 'bicubic'" in text
    assert "line 7: a gold judgment needs expected_choice" in text
    assert "line 8: rater 'r1' position 1 repeats line 2" in text
    assert "line 9: response_ms '-5' is not a non-negative number" in text


def test_the_header_tells_judgments_from_ratings():
    assert is_judgments_header(["rater", "dataset", "image", "method_a", "method_b", "choice"])
    assert not is_judgments_header(["rater", "dataset", "image", "method", "score"])
    with pytest.raises(RatingsFileError, match="unknown column 'score'"):
        read_judgments_csv(io.StringIO("rater,dataset,image,method_a,method_b,choice,score\n"))
