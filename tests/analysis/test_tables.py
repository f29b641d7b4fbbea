"""analysis.tables: the paper's Table 2 layout, reproduced from a simulated study at the paper's MOS."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from analysis import stats, tables

HEAD = ["NN", "Bicubic", "SRCNN", "SelfExSR", "DRCN", "ESPCN", "SRResNet", "SRGAN", "HR"]


def _rows(tex: str) -> list[list[str]]:
    body = tex.split(r"\midrule", 1)[1].split(r"\bottomrule")[0]
    lines = [ln.strip() for ln in body.splitlines() if ln.strip().endswith(r"\\")]
    return [[c.strip() for c in ln[:-2].split("&")] for ln in lines]


def _value(cell: str) -> float:
    return float(re.sub(r"\\textbf\{(.*)\}", r"\1", cell))


@pytest.fixture(scope="module")
def paper_tex(paper_study, stimuli_factory):
    ratings, _ = paper_study
    stimuli = stimuli_factory(ratings, noise=False)  # the paper's PSNR/SSIM for every image
    mos = stats.mos_table(ratings)
    return ratings, stimuli, mos, tables.table2_latex(mos, stimuli, methods=tables.TABLE2_METHODS)


def test_table2_layout_and_metrics_reproduce_the_paper(paper_tex):
    _, _, _, tex = paper_tex
    assert tex.count(r"\toprule") == tex.count(r"\bottomrule") == 1 and tex.count(r"\midrule") == 3
    assert r"\begin{tabular}{ll" + "r" * 9 + "}" in tex
    header = tex.split(r"\toprule")[1].split(r"\midrule")[0].strip()
    assert header == " & ".join(["Set", "Measure", *HEAD]) + r" \\"
    rows = _rows(tex)
    assert [(r[0], r[1]) for r in rows] == [
        ("Set5", "PSNR"), ("", "SSIM"), ("", "MOS"), ("Set14", "PSNR"), ("", "SSIM"), ("", "MOS"),
        ("BSD100", "PSNR"), ("", "SSIM"), ("", "MOS"),
    ]  # fmt: skip
    paper = tables.PAPER_TABLE2.set_index(["dataset", "method"])
    for k, dataset in enumerate(["Set5", "Set14", "BSD100"]):
        psnr, ssim = rows[3 * k][2:], rows[3 * k + 1][2:]
        for j, method in enumerate(tables.TABLE2_METHODS[:-1]):
            assert _value(psnr[j]) == pytest.approx(paper.loc[(dataset, method), "psnr_y"])
            assert _value(ssim[j]) == pytest.approx(paper.loc[(dataset, method), "ssim_y"])
        assert psnr[-1] == "-" and ssim[-1] == "1"  # HR, as the paper prints it
        # The best PSNR and SSIM of every dataset is SRResNet's, in bold; nothing else is.
        assert [c.startswith(r"\textbf") for c in psnr] == [m == "srresnet-mse" for m in tables.TABLE2_METHODS]
        assert [c.startswith(r"\textbf") for c in ssim] == [m == "srresnet-mse" for m in tables.TABLE2_METHODS]
    assert "32.05" in rows[0][8] and rows[1][8] == r"\textbf{0.9019}"


def test_table2_mos_within_sampling_error_of_the_paper(paper_tex):
    ratings, _, mos, tex = paper_tex
    rows = _rows(tex)
    boot = stats.bootstrap_mos_ci(ratings, n_boot=300, seed=1).set_index(["dataset", "method"])["boot_se"]
    paper = tables.PAPER_TABLE2.set_index(["dataset", "method"])["mos"]
    for k, dataset in enumerate(["Set5", "Set14", "BSD100"]):
        cells = rows[3 * k + 2][2:]
        values = [_value(c) for c in cells]
        for method, value in zip(tables.TABLE2_METHODS, values):
            assert abs(value - paper[(dataset, method)]) <= 4 * boot[(dataset, method)] + 0.005, (dataset, method)
        # Bold marks the largest MOS among the methods (HR excluded), at the printed precision.
        best = max(values[:-1])
        assert [c.startswith(r"\textbf") for c in cells] == [v == best and j < 8 for j, v in enumerate(values)]
    # With the paper's numbers SRGAN has the best MOS on BSD100 by a wide margin.
    assert rows[8][2:][7].startswith(r"\textbf")


def test_table2_frame_and_twelve_method_layout(paper_tex):
    ratings, stimuli, mos, _ = paper_tex
    frame = tables.table2_frame(mos, stimuli)
    assert list(frame.columns) == tables.METHOD_ORDER
    assert frame.index.names == ["dataset", "measure"] and len(frame) == 9
    assert np.isnan(frame.loc[("BSD100", "MOS"), "srgan-mse"])  # not rated on BSD100
    assert np.isnan(frame.loc[("Set5", "PSNR"), "hr"]) and frame.loc[("Set5", "SSIM"), "hr"] == 1.0
    assert frame.loc[("Set14", "MOS"), "bicubic"] == pytest.approx(
        mos.set_index(["dataset", "method"]).loc[("Set14", "bicubic"), "mos"])
    tex = tables.table2_latex(mos, stats.metric_means(stimuli))  # per-method means are accepted too
    bsd_mos = [r for r in _rows(tex) if r[1] == "MOS"][2]
    assert bsd_mos[2:][tables.METHOD_ORDER.index("srgan-mse")] == ""  # empty cell, not a number


def test_latex_escaping_ties_and_unknown_methods():
    mos = pd.DataFrame({"dataset": ["My_Set"] * 3, "method": ["a_b", "c&d", "hr"], "mos": [3.004, 2.996, 4.5]})
    metrics = pd.DataFrame({"dataset": ["My_Set"] * 3, "method": ["a_b", "c&d", "hr"],
                            "psnr_y": [25.0, 25.0, np.nan], "ssim_y": [0.7, 0.6, np.nan]})  # fmt: skip
    tex = tables.table2_latex(mos, metrics, caption="Test", label="tab:t")
    assert r"a\_b & c\&d & HR" in tex and r"My\_Set" in tex
    rows = _rows(tex)
    assert rows[0][2:] == [r"\textbf{25.00}", r"\textbf{25.00}", "-"]  # tie: both bold
    assert rows[2][2:] == [r"\textbf{3.00}", r"\textbf{3.00}", "4.50"]  # equal at the printed precision
    assert r"\caption{Test}" in tex and r"\label{tab:t}" in tex


def test_paper_constants():
    assert len(tables.PAPER_TABLE2) == 27 and len(tables.paper_true_mos()) == 33
    assert tables.paper_true_mos().groupby("dataset").size().to_dict() == {"BSD100": 9, "Set14": 12, "Set5": 12}
    assert tables.method_order(["hr", "zeta", "bicubic", "alpha"]) == ["bicubic", "alpha", "zeta", "hr"]


def test_dataset_order_is_the_papers_then_the_rest_by_name():
    # The one home of the dataset order, read by table2, the figures and the report.
    assert tables.dataset_order(["Urban100", "BSD100", "Set5", "DIV2K", "Set14", "Set5"]) == [
        "Set5", "Set14", "BSD100", "DIV2K", "Urban100"]  # fmt: skip
    assert tables.dataset_order(["BSD100", "Set5"], ["BSD100"]) == ["BSD100", "Set5"]
