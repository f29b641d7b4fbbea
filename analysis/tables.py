"""The paper's Table 2 (PSNR / SSIM / MOS per dataset and method) as a DataFrame and as LaTeX.

References
----------
1. Ledig, C. et al. (2017). Photo-realistic single image super-resolution using a generative
   adversarial network. CVPR, Tables 1 and 2.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from analysis._frames import ordered, require_columns
from analysis.stats import metric_means

__all__ = [
    "METHOD_LABELS",
    "METHOD_ORDER",
    "PAPER_TABLE1",
    "PAPER_TABLE2",
    "TABLE2_METHODS",
    "method_label",
    "method_order",
    "paper_true_mos",
    "table2_frame",
    "table2_latex",
]

#: Paper order of the 12 versions rated on Set5 and Set14 (platform method names).
METHOD_ORDER = [
    "nearest", "bicubic", "SRCNN", "SelfExSR", "DRCN", "ESPCN", "srresnet-mse", "srresnet-vgg22",
    "srgan-mse", "srgan-vgg22", "srgan-vgg54", "hr",
]  # fmt: skip
#: The nine columns of the paper's Table 2.
TABLE2_METHODS = ["nearest", "bicubic", "SRCNN", "SelfExSR", "DRCN", "ESPCN", "srresnet-mse", "srgan-vgg54", "hr"]
#: Column headings as the paper prints them.
METHOD_LABELS = {
    "nearest": "NN", "bicubic": "Bicubic", "srresnet-mse": "SRResNet", "srresnet-vgg22": "SRResNet-VGG22",
    "srgan-mse": "SRGAN-MSE", "srgan-vgg22": "SRGAN-VGG22", "srgan-vgg54": "SRGAN", "hr": "HR",
}  # fmt: skip
#: The paper's dataset order (tables, figures and the report); other datasets follow by name.
DATASET_ORDER = ("Set5", "Set14", "BSD100")

_T2 = {
    # method: {dataset: (psnr, ssim, mos)}; Ledig et al. (2017) Table 2 (HR: PSNR '-', SSIM 1).
    "nearest": {"Set5": (26.26, 0.7552, 1.28), "Set14": (24.64, 0.7100, 1.20), "BSD100": (25.02, 0.6606, 1.11)},
    "bicubic": {"Set5": (28.43, 0.8211, 1.97), "Set14": (25.99, 0.7486, 1.80), "BSD100": (25.94, 0.6935, 1.47)},
    "SRCNN": {"Set5": (30.07, 0.8627, 2.57), "Set14": (27.18, 0.7861, 2.26), "BSD100": (26.68, 0.7291, 1.87)},
    "SelfExSR": {"Set5": (30.33, 0.8720, 2.65), "Set14": (27.45, 0.7972, 2.34), "BSD100": (26.83, 0.7387, 1.89)},
    "DRCN": {"Set5": (31.52, 0.8938, 3.26), "Set14": (28.02, 0.8074, 2.84), "BSD100": (27.21, 0.7493, 2.12)},
    "ESPCN": {"Set5": (30.76, 0.8784, 2.89), "Set14": (27.66, 0.8004, 2.52), "BSD100": (27.02, 0.7442, 2.01)},
    "srresnet-mse": {"Set5": (32.05, 0.9019, 3.37), "Set14": (28.49, 0.8184, 2.98), "BSD100": (27.58, 0.7620, 2.29)},
    "srgan-vgg54": {"Set5": (29.40, 0.8472, 3.58), "Set14": (26.02, 0.7397, 3.72), "BSD100": (25.16, 0.6688, 3.56)},
    "hr": {"Set5": (np.nan, 1.0, 4.32), "Set14": (np.nan, 1.0, 4.32), "BSD100": (np.nan, 1.0, 4.46)},
}
_T1 = {
    # The three loss variants rated only on Set5 and Set14; Ledig et al. (2017) Table 1.
    "srresnet-vgg22": {"Set5": (30.51, 0.8803, 3.46), "Set14": (27.19, 0.7807, 3.15)},
    "srgan-mse": {"Set5": (30.64, 0.8701, 3.77), "Set14": (26.92, 0.7611, 3.43)},
    "srgan-vgg22": {"Set5": (29.84, 0.8468, 3.78), "Set14": (26.44, 0.7518, 3.57)},
}


def _paper_frame(table: Mapping) -> pd.DataFrame:
    rows = [(d, m, *v) for m, per in table.items() for d, v in per.items()]
    return pd.DataFrame(rows, columns=["dataset", "method", "psnr_y", "ssim_y", "mos"])


#: Table 2 of the paper: ``dataset, method, psnr_y, ssim_y, mos`` (27 rows).
PAPER_TABLE2 = _paper_frame(_T2)
#: The loss variants of Table 1 not in Table 2 (Set5 and Set14 only).
PAPER_TABLE1 = _paper_frame(_T1)


def paper_true_mos(include_variants: bool = True) -> pd.DataFrame:
    """The paper's MOS per (dataset, method) as a ``dataset, method, mos`` frame.

    With ``include_variants`` the three loss variants of Table 1 are added on Set5 and Set14, giving
    the study's 12/12/9 design; feed it to :func:`analysis.planning.simulate_study`.
    """
    frames = [PAPER_TABLE2, PAPER_TABLE1] if include_variants else [PAPER_TABLE2]
    return pd.concat(frames, ignore_index=True)[["dataset", "method", "mos"]]


def method_order(methods, order: Sequence[str] | None = None, reference: str = "hr") -> list:
    """Methods in the paper's order (or ``order``), unknown ones sorted by name before ``reference``."""
    base = list(order) if order is not None else METHOD_ORDER
    methods = list(methods)
    listed = [m for m in ordered(methods, base) if m != reference]
    known = [m for m in listed if m in base]
    unknown = [m for m in listed if m not in base]
    tail = [reference] if reference in set(methods) else []
    return known + unknown + tail


def dataset_order(datasets, order: Sequence[str] | None = None) -> list:
    """Distinct ``datasets`` in ``order`` (default :data:`DATASET_ORDER`), the others after them by name."""
    return ordered(datasets, order or DATASET_ORDER)


def method_label(method: str, labels: Mapping[str, str] | None = None) -> str:
    """Display name of a method (the paper's heading when known)."""
    return (labels or METHOD_LABELS).get(method, method)


def _metric_table(stimuli_metrics: pd.DataFrame) -> pd.DataFrame:
    require_columns(stimuli_metrics, ["dataset", "method"], "stimuli_metrics")
    if "image" in stimuli_metrics.columns:
        return metric_means(stimuli_metrics)
    return stimuli_metrics


def table2_frame(
    mos: pd.DataFrame,
    stimuli_metrics: pd.DataFrame,
    methods: Sequence[str] | None = None,
    datasets: Sequence[str] | None = None,
    reference: str = "hr",
) -> pd.DataFrame:
    """Table 2 as a DataFrame: rows (dataset, PSNR/SSIM/MOS), one column per method.

    Parameters
    ----------
    mos : pandas.DataFrame
        :func:`analysis.stats.mos_table` output (``dataset, method, mos``).
    stimuli_metrics : pandas.DataFrame
        The stimuli frame (per image; averaged with :func:`analysis.stats.metric_means`) or its
        per-method means (``dataset, method, psnr_y, ssim_y``).
    methods : sequence of str, optional
        Column order; default: every method present, in the paper's order (:data:`METHOD_ORDER`),
        others sorted by name before the reference.
    datasets : sequence of str, optional
        Row-group order; default Set5, Set14, BSD100, then others.
    reference : str
        The HR original: its PSNR is left empty and its SSIM is 1, as the paper prints them.

    Returns
    -------
    pandas.DataFrame
        Index ``(dataset, measure)`` with measure in ``PSNR, SSIM, MOS``; NaN where a method was not
        part of a dataset.
    """
    require_columns(mos, ["dataset", "method", "mos"], "mos")
    metrics = _metric_table(stimuli_metrics)
    all_methods = set(mos["method"]) | set(metrics["method"])
    cols = list(methods) if methods is not None else method_order(all_methods, reference=reference)
    rows = dataset_order(set(mos["dataset"]) | set(metrics["dataset"]), datasets)
    index = pd.MultiIndex.from_product([rows, ["PSNR", "SSIM", "MOS"]], names=["dataset", "measure"])
    table = pd.DataFrame(np.nan, index=index, columns=pd.Index(cols, name="method"))
    for frame, column, measure in ((metrics, "psnr_y", "PSNR"), (metrics, "ssim_y", "SSIM"), (mos, "mos", "MOS")):
        if column not in frame.columns:
            continue
        for d, m, v in frame[["dataset", "method", column]].itertuples(index=False):
            if d in rows and m in table.columns:
                table.loc[(d, measure), m] = v
    if reference in table.columns:
        rated = table.xs("MOS", level="measure")[reference].notna()
        for d in rows:
            table.loc[(d, "PSNR"), reference] = np.nan
            if rated.get(d, False) or not np.isnan(table.loc[(d, "SSIM"), reference]):
                table.loc[(d, "SSIM"), reference] = 1.0
    return table


_LATEX_SPECIAL = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                  "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}"}  # fmt: skip


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(c, c) for c in str(text))


def table2_latex(
    mos: pd.DataFrame,
    stimuli_metrics: pd.DataFrame,
    methods: Sequence[str] | None = None,
    datasets: Sequence[str] | None = None,
    labels: Mapping[str, str] | None = None,
    reference: str = "hr",
    caption: str | None = None,
    label: str = "tab:table2",
    ssim_name: str = "SSIM",
) -> str:
    """Table 2 in the paper's layout as a booktabs LaTeX table.

    Parameters
    ----------
    mos, stimuli_metrics, methods, datasets, reference
        As for :func:`table2_frame`.
    labels : mapping, optional
        Column headings; default :data:`METHOD_LABELS` (NN, Bicubic, ..., SRResNet, SRGAN, HR).
    caption : str, optional
        Caption; default states what is bold and which MOS was used.
    label : str
        LaTeX label.
    ssim_name : str
        Row heading of the SSIM row (say which SSIM implementation was used).

    Returns
    -------
    str
        A ``table`` environment with a ``tabular`` of columns ``Set & Measure & methods``; rows
        PSNR (two decimals, dB), SSIM (four decimals) and MOS (two decimals) per dataset; the best
        value of each row among the non-reference methods in bold (highest; ties at the printed
        precision all bold); the reference's PSNR printed as ``-`` and its SSIM as ``1``; an empty
        cell where a method was not part of a dataset. Needs ``\\usepackage{booktabs}``.
    """
    table = table2_frame(mos, stimuli_metrics, methods, datasets, reference)
    decimals = {"PSNR": 2, "SSIM": 4, "MOS": 2}
    cols = list(table.columns)
    head = ["Set", "Measure", *(_latex_escape(method_label(m, labels)) for m in cols)]
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        "\\caption{"
        + (caption or "PSNR [dB], SSIM and MOS at $4\\times$; highest measures in bold (the HR reference excluded).")
        + "}",
        f"\\label{{{label}}}",
        r"\begin{tabular}{ll" + "r" * len(cols) + "}",
        r"\toprule",
        " & ".join(head) + r" \\",
        r"\midrule",
    ]
    datasets_in = list(dict.fromkeys(table.index.get_level_values("dataset")))
    for k, d in enumerate(datasets_in):
        for j, measure in enumerate(("PSNR", "SSIM", "MOS")):
            values = table.loc[(d, measure)]
            places = decimals[measure]
            rounded = {m: round(float(v), places) for m, v in values.items() if m != reference and not np.isnan(v)}
            best = max(rounded.values()) if rounded else None
            cells = []
            for m, v in values.items():
                if m == reference and measure == "PSNR":
                    cells.append("" if np.isnan(table.loc[(d, "MOS"), m]) else "-")
                elif np.isnan(v):
                    cells.append("")
                elif m == reference and measure == "SSIM":
                    cells.append("1")
                else:
                    text = f"{v:.{places}f}"
                    cells.append(f"\\textbf{{{text}}}" if m != reference and rounded[m] == best else text)
            name = _latex_escape(d) if j == 0 else ""
            row_name = ssim_name if measure == "SSIM" else measure
            lines.append(" & ".join([name, _latex_escape(row_name), *cells]) + r" \\")
        if k < len(datasets_in) - 1:
            lines.append(r"\midrule")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)
