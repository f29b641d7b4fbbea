"""Write the full analysis of a MOS study to a folder: CSV tables, figures, LaTeX, SUREAL file, HTML.

This is the only module of :mod:`analysis` that writes files. Everything it writes is computed by the
other modules; the HTML page is standalone (inline CSS, PNG figures embedded as data URIs, no
external resources) and links the CSV, SVG and other files by relative paths.
"""

from __future__ import annotations

import base64
import html
import io
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import NamedTuple

import matplotlib
import numpy as np
import pandas as pd
import scipy
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from analysis import io as aio
from analysis import plots, screening, stats, tables
from analysis._frames import categorical_keys, level_label, test_rows
from sr_models.files import write_bytes_atomic, write_text_atomic

__all__ = ["ReportData", "write_report"]

# The page's skeleton. string.Template, not Django's engine (this module runs without Django) nor
# Jinja2 (not a dependency of ours: only torch's): every value put in is an HTML fragment this
# module built and escaped, so the template needs no logic of its own.
_PAGE = Template((Path(__file__).with_name("report_page.html")).read_text(encoding="utf-8"))

def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("_") or "x"


# A spreadsheet runs a cell beginning with one of these as a formula (OWASP "CSV Injection").
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def escape_csv_cell(cell: object) -> object:
    """``'`` before a text cell a spreadsheet would run as a formula (rater labels, image and dataset
    names come from researchers' files); numbers, negative ones included, stay as they are."""
    if not isinstance(cell, str) or not cell.startswith(_FORMULA_STARTS):
        return cell
    try:
        float(cell)
        return cell
    except ValueError:
        return "'" + cell


def _escape_column(column: pd.Series) -> pd.Series:
    """``escape_csv_cell`` of every cell, called only on the text cells that start like a formula
    (the ratings CSV of a crowd study has millions of text cells, almost none of them so, and a
    few thousand distinct ones: each distinct value is tested once)."""
    if column.dtype.kind in "mM":  # datetimes hold no text
        return column
    try:
        codes, uniques = pd.factorize(column)
    except TypeError:  # unhashable cells: test each one
        return column.map(escape_csv_cell)
    flags = np.fromiter((isinstance(u, str) and u.startswith(_FORMULA_STARTS) for u in uniques), bool, len(uniques))
    suspect = np.zeros(len(column), dtype=bool)
    suspect[codes >= 0] = flags[codes[codes >= 0]]
    if not suspect.any():
        return column
    column = column.astype(object)  # a copy; a categorical would refuse the escaped values
    column[suspect] = column[suspect].map(escape_csv_cell)
    return column


def _write_csv(path: Path, frame: pd.DataFrame) -> None:
    """Every CSV of the report, text cells escaped against formula injection (the one writer)."""
    text = frame.columns[frame.dtypes.map(lambda d: not pd.api.types.is_numeric_dtype(d))]
    frame = frame.assign(**{c: _escape_column(frame[c]) for c in text})
    write_text_atomic(path, frame.to_csv(index=False, lineterminator="\n"))


def _save_figure(fig: Figure, stem: Path, formats: Sequence[str]) -> dict[str, Path]:
    FigureCanvasAgg(fig)
    out = {}
    for fmt in formats:
        path = stem.with_suffix(f".{fmt}")
        buffer = io.BytesIO()
        # A fixed SVG hash salt and no date metadata make the files identical from run to run.
        meta = {"Date": None} if fmt == "svg" else {"Software": None}
        with matplotlib.rc_context({"svg.hashsalt": "mos-report"}):
            fig.savefig(buffer, format=fmt, dpi=110, bbox_inches="tight", metadata=meta)
        write_bytes_atomic(path, buffer.getvalue())
        out[fmt] = path
    return out


# --------------------------------------------------------------------------------------------
# HTML helpers
# --------------------------------------------------------------------------------------------

_CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: #1d2327;
       max-width: 1180px; margin: 0 auto; padding: 1.5em 2em 4em; line-height: 1.45; background: #fff; }
h1 { font-size: 1.7em; margin-bottom: .2em; } h2 { border-bottom: 2px solid #d0d7de; padding-bottom: .2em;
     margin-top: 2.2em; } h3 { margin-top: 1.6em; }
.sub { color: #57606a; margin-top: 0; }
nav { background: #f6f8fa; border: 1px solid #d0d7de; border-radius: 6px; padding: .6em 1em; margin: 1em 0; }
nav a { margin-right: 1.2em; white-space: nowrap; }
table { border-collapse: collapse; margin: .6em 0 1.2em; font-size: 0.86em; }
th, td { border-bottom: 1px solid #d8dee4; padding: 3px 8px; text-align: right; vertical-align: top; }
th { background: #f6f8fa; position: sticky; top: 0; }
td.l, th.l { text-align: left; }
tr.flagged td { background: #fff1f0; }
td.best { font-weight: 700; }
td.sig-pos { background: #d8f3dc; } td.sig-neg { background: #ffe3e3; } td.sig-0 { color: #8c959f; }
td.diag { background: #eaeef2; }
.matrix td { text-align: center; min-width: 2.4em; }
.cards { display: flex; flex-wrap: wrap; gap: .8em; margin: 1em 0; }
.card { border: 1px solid #d0d7de; border-radius: 6px; padding: .5em 1em; min-width: 9em; }
.card b { display: block; font-size: 1.4em; }
figure { margin: 1em 0 2em; } figure img { max-width: 100%; border: 1px solid #eaeef2; }
figcaption { color: #57606a; font-size: .9em; }
pre { background: #f6f8fa; border: 1px solid #d0d7de; border-radius: 6px; padding: .8em; overflow-x: auto;
      font-size: .85em; }
code, .mono { font-family: "SFMono-Regular", Consolas, "Liberation Mono", monospace; font-size: .9em; }
details { margin: .6em 0 1.2em; } summary { cursor: pointer; color: #0969da; }
.note { color: #57606a; font-size: .9em; max-width: 62em; }
.scroll { max-height: 34em; max-width: 100%; overflow: auto; border: 1px solid #eaeef2; }
.wide { max-width: 100%; overflow-x: auto; }
ul.flags li { margin: .2em 0; }
.warning { background: #fff8c5; border: 1px solid #d4a72c; border-radius: 6px; padding: .5em 1em; max-width: 62em; }
"""


def _esc(value) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.{digits}f}"
    return str(value)


def _fmt_p(p) -> str:
    if p is None or (isinstance(p, float) and np.isnan(p)):
        return ""
    p = float(p)
    if p == 0.0:
        return "&lt; 1e-300"
    return f"{p:.2e}" if p < 1e-3 else f"{p:.3f}"


def _html_table(
    frame: pd.DataFrame,
    formats: Mapping[str, object] | None = None,
    left: Sequence[str] = (),
    row_class=None,
) -> str:
    """A plain HTML table; ``formats`` maps a column to digits or to a callable returning HTML.

    Cells are formatted a column at a time (a text cell once per distinct text): the report of a
    crowd study lists some 10^5 stimuli, and row-by-row formatting took most of its page's time.
    """
    formats = formats or {}
    head = "".join(f'<th class="{"l" if c in left else ""}">{_esc(c)}</th>' for c in frame.columns)
    columns = []
    for k, col in enumerate(frame.columns):
        spec = formats.get(col, 3)
        start = f'<td class="{"l" if col in left else ""}">'
        if callable(spec):
            columns.append([f"{start}{spec(value)}</td>" for value in frame.iloc[:, k]])
            continue
        texts: dict[str, str] = {}
        cells = []
        for value in frame.iloc[:, k]:
            if type(value) is str:
                cell = texts.get(value)
                if cell is None:
                    cell = texts[value] = f"{start}{_esc(_fmt(value, spec))}</td>"
            else:
                cell = f"{start}{_esc(_fmt(value, spec))}</td>"
            cells.append(cell)
        columns.append(cells)
    rows = ["".join(cells) for cells in zip(*columns)] if columns else [""] * len(frame)
    classes = [row_class(k) if row_class else "" for k in range(len(rows))]
    body = "".join(f'<tr class="{cls}">{cells}</tr>' for cls, cells in zip(classes, rows))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _img(path: Path, alt: str, caption: str, svg: Path | None) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    link = f' <a href="{_esc(svg.name)}">SVG</a> · <a href="{_esc(path.name)}">PNG</a>' if svg else ""
    return (
        f'<figure><img alt="{_esc(alt)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{_esc(caption)}{link}</figcaption></figure>"
    )


def _matrix_html(matrix: pd.DataFrame, labels: Mapping[str, str] | None = None) -> str:
    cols = "".join(f"<th>{_esc(tables.method_label(c, labels))}</th>" for c in matrix.columns)
    rows = []
    for method, row in matrix.iterrows():
        cells = []
        for other, value in row.items():
            if method == other:
                cells.append('<td class="diag"></td>')
            elif np.isnan(value):
                cells.append("<td></td>")
            elif value > 0:
                cells.append('<td class="sig-pos" title="row significantly higher">▲</td>')
            elif value < 0:
                cells.append('<td class="sig-neg" title="row significantly lower">▼</td>')
            else:
                cells.append('<td class="sig-0" title="not significant">·</td>')
        rows.append(f'<tr><th class="l">{_esc(tables.method_label(method, labels))}</th>{"".join(cells)}</tr>')
    return f'<table class="matrix"><thead><tr><th></th>{cols}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _table2_html(frame: pd.DataFrame, reference: str = "hr") -> str:
    decimals = {"PSNR": 2, "SSIM": 4, "MOS": 2}
    cols = list(frame.columns)
    head = '<th class="l">Set</th><th class="l">Measure</th>' + "".join(
        f"<th>{_esc(tables.method_label(c))}</th>" for c in cols
    )
    body = []
    for (dataset, measure), values in frame.iterrows():
        places = decimals[measure]
        finite = {m: round(v, places) for m, v in values.items() if m != reference and not np.isnan(v)}
        best = max(finite.values()) if finite else None
        cells = []
        for m, v in values.items():
            if m == reference and measure == "PSNR":
                cells.append("<td>-</td>" if not np.isnan(frame.loc[(dataset, "MOS"), m]) else "<td></td>")
            elif np.isnan(v):
                cells.append("<td></td>")
            elif m == reference and measure == "SSIM":
                cells.append("<td>1</td>")
            else:
                cls = ' class="best"' if m != reference and finite.get(m) == best else ""
                cells.append(f"<td{cls}>{v:.{places}f}</td>")
        name = _esc(dataset) if measure == "PSNR" else ""
        body.append(f'<tr><td class="l">{name}</td><td class="l">{measure}</td>{"".join(cells)}</tr>')
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------


def write_report(
    out_dir: str | os.PathLike,
    ratings: pd.DataFrame,
    stimuli: pd.DataFrame,
    study: Mapping,
    *,
    n_boot: int = 2000,
    seed: int | None = None,
    confidence: float = 0.95,
    methods: Sequence[str] | None = None,
    datasets: Sequence[str] | None = None,
    flag_rules: screening.FlagRules = screening.DEFAULT_RULES,
    image_formats: Sequence[str] = ("png", "svg"),
) -> dict[str, Path]:
    """Analyse a study and write every result to ``out_dir``.

    Parameters
    ----------
    out_dir : path
        Folder to write (created if missing; files of the same names are replaced).
    ratings : pandas.DataFrame
        Long ratings frame (see :mod:`analysis.stats`).
    stimuli : pandas.DataFrame
        One row per (dataset, image, method) with ``psnr_y``, ``ssim_y`` (optional ``lpips``, ``dists``, ``niqe``),
        ``sha256`` and ``file``.
    study : mapping
        ``name``, ``seed``, ``config_text`` and any other keys (shown in the metadata table).
    n_boot : int
        Bootstrap replicates of the MOS intervals and of the metric correlations.
    seed : int, optional
        Bootstrap seed; default ``study["seed"]`` (0 if absent).
    confidence : float
        Level of all intervals.
    methods, datasets : sequence of str, optional
        Display and test order; default the paper's (NN ... SRGAN, HR; Set5, Set14, BSD100).
    flag_rules : analysis.screening.FlagRules
        The rules that flag a rater (applied by :func:`analysis.screening.rater_report` and stated
        in the page by their own :meth:`~analysis.screening.FlagRules.describe`).
    image_formats : sequence of str
        Figure formats; PNG is always written because the HTML embeds it.

    Returns
    -------
    dict of str to pathlib.Path
        ``ratings, mos, mos_per_image, pairwise, raters, mos_unflagged, reliability, mle_quality,
        table2, sureal, html`` and ``figure_<name>_<format>`` for every figure.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seed = int(study.get("seed", 0) or 0) if seed is None else int(seed)
    formats = list(dict.fromkeys(["png", *image_formats]))
    ratings, stimuli = categorical_keys(ratings), categorical_keys(stimuli)
    test = test_rows(ratings)
    order = list(methods) if methods is not None else tables.method_order(test["method"].unique())
    sets = tables.dataset_order(test["dataset"].unique(), datasets)

    # ---- computations (all in the Django-free modules) ----
    mos = stats.mos_table(ratings, confidence=confidence)
    replicates = stats.two_way_replicates(ratings, n_boot=n_boot, seed=seed)  # one drawing for both uses
    boot = stats.bootstrap_mos_ci(ratings, n_boot=n_boot, confidence=confidence, seed=seed, replicates=replicates)
    mos_full = mos.merge(boot, on=["dataset", "method"], how="left")
    per_image = stats.per_image_mos(ratings, confidence=confidence)
    pairwise = stats.pairwise_tests(ratings, methods=order)
    differences = stats.mos_differences(ratings, methods=order, n_boot=n_boot, confidence=confidence, seed=seed,
                                        replicates=replicates)  # fmt: skip
    pairwise = pairwise.merge(_twoway_columns(differences), on=["dataset", "method_a", "method_b"], how="left")
    mle = screening.mle_scores(ratings, confidence=confidence)
    raters = screening.rater_report(ratings, flag_rules, mle=mle)
    reliability = screening.reliability_summary(ratings, raters, confidence=confidence)
    flagged_ids = set(raters.loc[raters["flagged"], "rater_id"])
    kept = ratings.loc[~ratings["rater_id"].isin(flagged_ids)]
    mos_unflagged = stats.mos_table(kept, confidence=confidence) if len(test_rows(kept)) else mos.iloc[0:0]
    metric_table = stats.metric_means(stimuli)
    metric_cols = [m for m in stats.DEFAULT_METRICS if m in metric_table.columns and metric_table[m].notna().any()]
    correlations = stats.metric_correlations(ratings, stimuli, metrics=metric_cols, n_boot=n_boot,
                                             confidence=confidence, seed=seed, replicates=replicates)  # fmt: skip
    t2_frame = tables.table2_frame(mos, metric_table, methods=order, datasets=sets)
    t2_tex = tables.table2_latex(mos, metric_table, methods=order, datasets=sets)
    sureal_text = aio.sureal_dataset_text(ratings, stimuli, dataset_name=_slug(study.get("name", "mos_study")))

    # ---- files ----
    paths: dict[str, Path] = {}

    def csv(name: str, frame: pd.DataFrame) -> None:
        paths[name] = out / f"{name}.csv"
        _write_csv(paths[name], frame)

    csv("ratings", aio.ratings_csv_frame(ratings))
    csv("mos", mos_full)
    csv("mos_per_image", per_image)
    csv("pairwise", pairwise)
    csv("raters", raters)
    csv("mos_unflagged", mos_unflagged)
    csv("reliability", reliability)
    csv("mle_quality", mle.quality)
    paths["table2"] = out / "table2.tex"
    write_text_atomic(paths["table2"], t2_tex)
    paths["sureal"] = out / "sureal_dataset.py"
    write_text_atomic(paths["sureal"], sureal_text)

    figures: list[FigureEntry] = []

    def save(fig: Figure, name: str, alt: str, caption: str) -> None:
        saved = _save_figure(fig, out / name, formats)
        for fmt, path in saved.items():
            paths[f"figure_{name}_{fmt}"] = path
        figures.append(FigureEntry(name, alt, caption))

    for d in sets:
        n_methods = test.loc[test["dataset"] == d, "method"].nunique()
        fig = Figure(figsize=(max(6.5, 0.75 * n_methods + 2.5), 4.6))
        plots.plot_rating_distribution(ratings, fig.add_subplot(), dataset=d, methods=order)
        save(fig, f"distribution_{_slug(d)}", f"Rating distribution on {d}",
             f"Distribution of the ratings per method on {d}; red diamond: mean (as the paper's "
             "Figure 5).")  # fmt: skip
    level = level_label(confidence)
    for interval in ("t", "bootstrap"):
        fig = Figure(figsize=(max(7.0, 0.7 * len(order) + 3), 4.6))
        plots.plot_mos(mos_full, fig.add_subplot(), methods=order, datasets=sets, interval=interval,
                       confidence=confidence)  # fmt: skip
        name = "mos" if interval == "t" else "mos_bootstrap"
        what = (
            f"{level} Student-t intervals" if interval == "t"
            else f"{level} two-way bootstrap intervals ({n_boot} replicates)"
        )  # fmt: skip
        save(fig, name, f"MOS per method ({interval})", f"MOS per method and dataset with {what}.")
    for metric in metric_cols:
        fig = Figure(figsize=(5.6 * len(sets), 5.0))
        for k, d in enumerate(sets):
            ax = fig.add_subplot(1, len(sets), k + 1)
            plots.plot_perception_distortion(mos_full, metric_table, ax, d, metric=metric, correlations=correlations)
        save(fig, f"perception_distortion_{metric}", f"MOS against {metric}",
             f"Perception-distortion plane: MOS ({level} t intervals) against mean {metric} per method; rank "
             f"correlations with {level} two-way bootstrap intervals (HR excluded).")  # fmt: skip

    paths["html"] = out / "report.html"
    page = _render_html(ReportData(
        study=study, seed=seed, n_boot=n_boot, confidence=confidence, test=test, stimuli=stimuli, order=order,
        sets=sets, mos_full=mos_full, mos_unflagged=mos_unflagged, pairwise=pairwise, raters=raters,
        reliability=reliability, mle=mle, correlations=correlations, t2_frame=t2_frame, t2_tex=t2_tex,
        figures=figures, out=out, paths=paths, flag_rules=flag_rules,
    ))  # fmt: skip
    write_text_atomic(paths["html"], page)
    return paths


_PAIR_KEY = ["dataset", "method_a", "method_b"]


_TWOWAY = "twoway_"  # pairwise.csv's prefix for the test that generalises over raters and images


def _twoway_columns(differences: pd.DataFrame) -> pd.DataFrame:
    """:func:`analysis.stats.mos_differences` with its columns prefixed ``twoway_`` for pairwise.csv."""
    return differences.rename(columns={c: f"{_TWOWAY}{c}" for c in differences.columns if c not in _PAIR_KEY})


def _differences(pairwise: pd.DataFrame) -> pd.DataFrame:
    """The ``twoway_`` columns of pairwise.csv under their own names, as significance_matrix reads them."""
    cols = [c for c in pairwise.columns if c.startswith(_TWOWAY)]
    return pairwise[_PAIR_KEY + cols].rename(columns={c: c[len(_TWOWAY):] for c in cols})


def _rater_model_html(mle: screening.MLEResult, raters: pd.DataFrame) -> str:
    """What the P.910 rater model left out, and a warning when its estimate is a boundary point."""
    out = ["<h3>P.910 rater model</h3>"]
    if mle.warning:
        out.append(f'<p class="warning"><b>Warning:</b> {_esc(mle.warning)}.</p>')
    left = raters.loc[~raters["mle_modelled"]]
    if len(left):
        items = "".join(f"<li><b>{_esc(r.rater_id)}</b> ({r.n_ratings} test ratings): {_esc(r.mle_note)}</li>"
                        for r in left.itertuples())  # fmt: skip
        out.append(f'<p class="note">Left out of the model ({len(left)} of {len(raters)} raters); their ratings '
                   f'still count in every MOS and test:</p><ul class="flags">{items}</ul>')  # fmt: skip
    else:
        out.append('<p class="note">Every rater entered the model.</p>')
    return "".join(out)


class FigureEntry(NamedTuple):
    """A figure of the page: ``paths`` holds ``figure_<key>_png`` (and ``_svg``)."""

    key: str
    alt: str
    caption: str


@dataclass(frozen=True)
class ReportData:
    """Everything ``report.html`` shows, computed once by :func:`write_report`.

    Each frame is the one written to the CSV of the same name (``mos_full`` is mos.csv); ``test``
    holds the test rows of the ratings, ``order`` and ``sets`` the method and dataset order.
    """

    study: Mapping
    seed: int
    n_boot: int
    confidence: float
    test: pd.DataFrame
    stimuli: pd.DataFrame
    order: list[str]
    sets: list[str]
    mos_full: pd.DataFrame
    mos_unflagged: pd.DataFrame
    pairwise: pd.DataFrame
    raters: pd.DataFrame
    reliability: pd.DataFrame
    mle: screening.MLEResult
    correlations: pd.DataFrame
    t2_frame: pd.DataFrame
    t2_tex: str
    figures: list[FigureEntry]
    out: Path
    paths: Mapping[str, Path]
    flag_rules: screening.FlagRules

    @property
    def name(self) -> str:
        return str(self.study.get("name", "MOS study"))

    @property
    def n_flagged(self) -> int:
        return int(self.raters["flagged"].sum())

    @property
    def level(self) -> str:
        return level_label(self.confidence)


def _render_html(data: ReportData) -> str:
    """The standalone page: the template filled with the escaped sections."""
    return _PAGE.substitute(
        title=_esc(data.name), css=_CSS, n_raters=data.test["rater_id"].nunique(), n_ratings=len(data.test),
        n_datasets=len(data.sets), n_methods=len(data.order), n_flagged=data.n_flagged,
        mos=_mos_section(data), table2=_table2_section(data), tests=_tests_section(data),
        figures=_figures_section(data), raters=_raters_section(data), repro=_repro_section(data),
        files=_files_section(data),
    )  # fmt: skip


def _mos_section(data: ReportData) -> str:
    """MOS per dataset, with and without the flagged raters."""
    level = data.level
    n_flagged = data.n_flagged
    order = data.order
    sets = data.sets
    parts = []
    # MOS tables with and without flagged raters.
    parts.append('<h2 id="mos">Mean opinion scores</h2>')
    parts.append(
        f'<p class="note">MOS over the test ratings; <i>{level} t</i>: mean ± t·SD/√n, treating ratings as '
        f"independent (ITU-R BT.500 style); <i>{level} bootstrap</i>: percentile interval of {data.n_boot} "
        "two-way bootstrap replicates that resample raters and images (Owen 2007), the interval to quote "
        "when generalising to other raters and images. The last columns repeat the MOS without the "
        f"{n_flagged} flagged rater(s) (see <a href=\"#raters\">Raters</a>).</p>"
    )
    unflagged = data.mos_unflagged.set_index(["dataset", "method"])
    for d in sets:
        part = data.mos_full.loc[data.mos_full["dataset"] == d].set_index("method")
        part = part.reindex([m for m in order if m in part.index])
        rows = []
        for method, r in part.iterrows():
            u = unflagged.loc[(d, method)] if (d, method) in unflagged.index else None
            rows.append(
                {
                    "method": tables.method_label(method),
                    "n": r["n"],
                    "MOS": r["mos"],
                    "SD": r["std"],
                    f"{level} t": f"[{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]",
                    f"{level} bootstrap": f"[{_fmt(r['boot_low'])}, {_fmt(r['boot_high'])}]",
                    "n (unflagged)": None if u is None else int(u["n"]),
                    "MOS (unflagged)": None if u is None else u["mos"],
                    f"{level} t (unflagged)": "" if u is None else f"[{_fmt(u['ci_low'])}, {_fmt(u['ci_high'])}]",
                }
            )
        parts.append(f"<h3>{_esc(d)}</h3>")
        frame = pd.DataFrame(rows)
        frame["n (unflagged)"] = frame["n (unflagged)"].astype("Int64")
        parts.append('<div class="wide">' + _html_table(frame, left=["method"]) + "</div>")
    return "\n".join(parts)


def _table2_section(data: ReportData) -> str:
    """The paper's Table 2 layout and its LaTeX."""
    parts = []
    parts.append('<h2 id="table2">Table 2 layout</h2>')
    parts.append(
        '<p class="note">Mean PSNR [dB] and SSIM on the Y channel from the stimulus table, and the MOS above, in '
        "the paper's Table 2 layout; best value per row in bold (HR excluded). The LaTeX is in "
        '<a href="table2.tex">table2.tex</a>.</p>'
    )
    parts.append('<div class="wide">' + _table2_html(data.t2_frame) + "</div>")
    parts.append(f"<details><summary>LaTeX source</summary><pre>{_esc(data.t2_tex)}</pre></details>")
    return "\n".join(parts)


def _tests_section(data: ReportData) -> str:
    """The two pairwise tests per dataset: matrices and tables."""
    level = data.level
    order = data.order
    sets = data.sets
    parts = []
    # Significance.
    parts.append('<h2 id="tests">Pairwise significance</h2>')
    parts.append(
        '<p class="note">Two tests for every pair of methods within a dataset, each Holm-corrected across the '
        "dataset's pairs (▲: the row method is rated significantly higher than the column method at α = 0.05; ▼: "
        "significantly lower; ·: not significant). They answer different questions.</p>"
        '<ul class="note">'
        "<li><b>Generalising to other raters and other images</b> (quote this one): the difference of the two "
        f"MOS with a {level} interval and a t test whose standard error treats raters and images both as "
        "clusters (two-way cluster-robust, Cameron, Gelbach &amp; Miller 2011; t on min(raters, images) − 1 "
        "degrees of freedom). It asks "
        "whether other raters, rating other images of the same kind, would also rate the two methods apart: "
        "a rater's or an image's liking for one method counts as variation, not as evidence.</li>"
        "<li><b>The paper's test, for these raters on these images only</b>: the two-sided Wilcoxon signed-rank "
        "test on the ratings paired by rater and image (SciPy defaults; Mann-Whitney U where the two methods "
        "were not rated by the same raters), as in Ledig et al. It treats every (rater, image) pair as an "
        "independent observation, so it says whether these raters rated these images differently, and "
        "rejects far more often than 5% when raters or images differ in which method they prefer.</li></ul>"
        '<p class="note">The full table, with both tests, the unadjusted p-values and the matched-pairs '
        'rank-biserial effect size, is <a href="pairwise.csv">pairwise.csv</a> (the two-way test in its '
        f"<code>{_TWOWAY}</code> columns, with the two-way bootstrap standard error beside its own).</p>"
    )
    pairwise = data.pairwise
    differences = _differences(pairwise)
    for d in sets:
        parts.append(f"<h3>{_esc(d)}</h3>")
        general = stats.significance_matrix(differences, d, alpha=0.05, adjusted=True, methods=order)
        paper = stats.significance_matrix(pairwise, d, alpha=0.05, adjusted=True, methods=order)
        parts.append(
            '<div class="cards"><div><p class="note">Generalising to other raters and images (two-way clustered, '
            f'Holm)</p>{_matrix_html(general)}</div><div><p class="note">The paper\'s Wilcoxon, these raters '
            f"and images only (Holm)</p>{_matrix_html(paper)}</div></div>"
        )
        unadjusted = stats.significance_matrix(pairwise, d, alpha=0.05, adjusted=False, methods=order)
        parts.append(
            "<details><summary>The paper's Wilcoxon, unadjusted (p &lt; 0.05, as in the paper)</summary>"
            f'<div class="wide">{_matrix_html(unadjusted)}</div></details>'
        )
        table = differences.loc[differences["dataset"] == d].drop(columns="dataset")
        table = table.assign(method_a=table["method_a"].map(tables.method_label),
                             method_b=table["method_b"].map(tables.method_label))  # fmt: skip
        bounds = zip(table["diff_low"], table["diff_high"])
        table[f"{level} interval"] = [f"[{_fmt(lo)}, {_fmt(hi)}]" for lo, hi in bounds]
        table = table[["method_a", "method_b", "n_raters", "n_images", "mean_diff", "diff_se", f"{level} interval",
                       "df", "t", "p_value", "p_holm"]]  # fmt: skip
        parts.append(
            f"<details><summary>MOS differences on {_esc(d)}, generalising to raters and images</summary>"
            + _html_table(table, formats={"df": 0, "p_value": _fmt_p, "p_holm": _fmt_p},
                          left=["method_a", "method_b"])  # fmt: skip
            + "</details>"
        )
        columns = ["method_a", "method_b", "test", "n", "mos_a", "mos_b", "statistic", "p_value", "p_holm",
                   "effect_size"]  # fmt: skip
        table = pairwise.loc[pairwise["dataset"] == d, columns]
        table = table.assign(method_a=table["method_a"].map(tables.method_label),
                             method_b=table["method_b"].map(tables.method_label))  # fmt: skip
        parts.append(
            f"<details><summary>The paper's {len(table)} Wilcoxon tests on {_esc(d)}</summary>"
            + _html_table(table, formats={"statistic": 1, "p_value": _fmt_p, "p_holm": _fmt_p},
                          left=["method_a", "method_b", "test"])  # fmt: skip
            + "</details>"
        )
    return "\n".join(parts)


def _figures_section(data: ReportData) -> str:
    """Every figure (PNG embedded, SVG linked) and the metric-MOS rank correlations."""
    level = data.level
    paths = data.paths
    parts = []
    # Figures.
    parts.append('<h2 id="figures">Figures</h2>')
    for key, alt, caption in data.figures:
        png = paths[f"figure_{key}_png"]
        svg = paths.get(f"figure_{key}_svg")
        parts.append(_img(png, alt, caption, svg))
    if not data.correlations.empty:
        parts.append("<h3>Rank correlation of objective metrics with MOS</h3>")
        parts.append(f'<p class="note">Which metric agrees with your raters: across methods (HR excluded), with '
                     f'{level} two-way bootstrap intervals. LPIPS, DISTS and NIQE are lower-is-better, so they agree '
                     f'with the raters when their coefficients are negative.</p>')
        parts.append(_html_table(data.correlations, left=["dataset", "metric"]))
    return "\n".join(parts)


def _raters_section(data: ReportData) -> str:
    """The flagging rules, the flagged raters, the rater model and every rater's statistics."""
    level = data.level
    raters = data.raters
    parts = []
    # Raters.
    parts.append('<h2 id="raters">Raters and reliability</h2>')
    rules = data.flag_rules.describe()
    parts.append("<p class=\"note\">A rater is flagged when any rule holds: " + "; ".join(map(_esc, rules))
                 + ". Flagged raters are highlighted. The MOS tables without them are above; nothing is "
                 "removed silently.</p>")  # fmt: skip
    flagged = raters.loc[raters["flagged"]]
    if len(flagged):
        items = "".join(f"<li><b>{_esc(r.rater_id)}</b>: {_esc(r.flag_reasons)}</li>" for r in flagged.itertuples())
        parts.append(f'<h3>Flagged raters ({len(flagged)} of {len(raters)})</h3><ul class="flags">{items}</ul>')
    else:
        parts.append("<h3>Flagged raters</h3><p>None.</p>")
    parts.append(_rater_model_html(data.mle, raters))
    parts.append("<h3>Study-level reliability</h3>")
    rel = data.reliability.copy()
    rel["value"] = [_fmt(v, 4) for v in rel["value"]]
    parts.append(_html_table(rel, left=["measure", "value"]))
    shown = raters[[
        "rater_id", "n_ratings", "mean_score", "bt500_P", "bt500_Q", "bt500_ratio", "bt500_rejected", "loo_pearson",
        "loo_spearman", "n_gold", "gold_within1", "n_repeat", "retest_r", "retest_mad", "mle_modelled", "mle_bias",
        "mle_inconsistency", "mle_note", "flagged", "flag_reasons"]]  # fmt: skip
    flags = shown["flagged"].to_numpy()
    parts.append("<h3>All raters</h3>")
    parts.append(
        '<div class="scroll">'
        + _html_table(shown, formats={"bt500_ratio": 3, "gold_within1": 2},
                      left=["rater_id", "mle_note", "flag_reasons"],
                      row_class=lambda k: "flagged" if flags[k] else "")  # fmt: skip
        + "</div>"
    )
    parts.append(
        f'<p class="note">Rater-model quality scores ψ per stimulus with {level} intervals '
        f"({data.mle.n_iter} iterations, {'converged' if data.mle.converged else 'NOT converged'}): "
        '<a href="mle_quality.csv">mle_quality.csv</a>; SUREAL dataset file: '
        '<a href="sureal_dataset.py">sureal_dataset.py</a>.</p>'
    )
    return "\n".join(parts)


def _repro_section(data: ReportData) -> str:
    """Seeds, software, the study file and the hash of every stimulus."""
    name = data.name
    study = data.study
    parts = []
    # Reproducibility.
    parts.append('<h2 id="repro">Reproducibility</h2>')
    meta = [("name", name), ("seed (bootstrap)", data.seed), ("bootstrap replicates", data.n_boot),
            ("confidence level", data.confidence)]  # fmt: skip
    meta += [(k, v) for k, v in study.items() if k not in ("name", "seed", "config_text")]
    meta += [("study seed", study.get("seed", "")),
             ("software", f"numpy {np.__version__}, scipy {scipy.__version__}, pandas {pd.__version__}, "
                          f"matplotlib {matplotlib.__version__}")]  # fmt: skip
    parts.append(_html_table(pd.DataFrame(meta, columns=["key", "value"]).astype(str), left=["key", "value"]))
    parts.append(f"<h3>Study file</h3><pre>{_esc(study.get('config_text', '') or '(none given)')}</pre>")
    stim_cols = [col for col in ("dataset", "image", "method", "file", "sha256") if col in data.stimuli.columns]
    stim = data.stimuli[stim_cols].sort_values([col for col in ("dataset", "image", "method") if col in stim_cols])
    parts.append(
        f"<h3>Stimuli ({len(stim)})</h3><details><summary>SHA-256 of every stimulus file</summary>"
        '<div class="scroll">' + _html_table(stim, left=stim_cols) + "</div></details>"
    )
    return "\n".join(parts)


def _files_section(data: ReportData) -> str:
    """Links to every file written."""
    out = data.out
    paths = data.paths
    parts = []
    parts.append('<h2 id="files">Files</h2><ul>')
    for key, path in sorted(paths.items()):
        if key != "html":
            parts.append(f'<li><a href="{_esc(path.relative_to(out).as_posix())}">{_esc(path.name)}</a></li>')
    parts.append("</ul>")
    return "\n".join(parts)
