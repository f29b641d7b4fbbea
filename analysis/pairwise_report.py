"""Write the analysis of a paired-comparison study to a folder: CSV tables, figures, LaTeX, HTML.

The counterpart of :mod:`analysis.report` for ``protocol = "pairwise"`` and ``"2afc-real"``
studies; it shares that module's writers (CSV escaping, figures, HTML pieces) and its page style.
Everything it writes is computed by :mod:`analysis.pairwise`, :mod:`analysis.preference_tests` and
:mod:`analysis.pairwise_screening`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from string import Template

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis import pairwise, pairwise_plots, stats, tables
from analysis._frames import level_label
from analysis.judgments_io import judgments_csv_frame
from analysis.pairwise_screening import PairwiseFlagRules, pairwise_rater_report
from analysis.preference_tests import fool_rates, pair_tests
from analysis.report import _CSS, _esc, _fmt_p, _html_table, _img, _save_figure, _slug, _write_csv
from sr_models.files import write_text_atomic

__all__ = ["PROTOCOL_WORDS", "SCALE_COLUMNS", "SCALE_PER_IMAGE_COLUMNS", "scale_latex", "write_pairwise_report"]

SCALE_COLUMNS = ["dataset", "method", "n", "thurstone", "thurstone_ci_low", "thurstone_ci_high", "bt", "bt_ci_low",
                 "bt_ci_high"]
SCALE_PER_IMAGE_COLUMNS = ["dataset", "image", "method", "n", "thurstone", "thurstone_se", "bt", "bt_se"]
_PAGE = Template((Path(__file__).with_name("pairwise_report_page.html")).read_text(encoding="utf-8"))
PROTOCOL_WORDS = {
    "pairwise": "Paired comparison: raters saw two versions of one image and chose the better one.",
    "2afc-real": "Two-alternative forced choice against the original: raters saw a method's output and the "
                 "original photograph and chose the one they took for real (SR3's fool rate).",
}


def scale_latex(scale: pd.DataFrame, methods: Sequence[str], datasets: Sequence[str], *, confidence: float = 0.95,
                label: str = "tab:jod") -> str:
    """Methods x datasets booktabs table of JOD scores with their intervals."""
    esc = tables._latex_escape
    head = " & ".join(["Method", *(esc(d) for d in datasets)])
    lines = [r"\begin{table}[t]", r"\centering", r"\begin{tabular}{l" + "c" * len(datasets) + "}", r"\toprule",
             head + r" \\", r"\midrule"]
    for method in methods:
        cells = [esc(tables.method_label(method))]
        for dataset in datasets:
            row = scale[(scale["dataset"] == dataset) & (scale["method"] == method)]
            if row.empty or not np.isfinite(row["thurstone"].iloc[0]):
                cells.append("--")
                continue
            r = row.iloc[0]
            cells.append(f"{r.thurstone:+.2f} [{r.thurstone_ci_low:+.2f}, {r.thurstone_ci_high:+.2f}]")
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}",
              rf"\caption{{Thurstone Case V scale in JOD (1 JOD = 75\% preference), mean zero per dataset, with "
              rf"{esc(level_label(confidence))} rater $\times$ image bootstrap intervals.}}",
              rf"\label{{{label}}}", r"\end{table}", ""]
    return "\n".join(lines)


def _scale_section(scale: pd.DataFrame, sets: list[str], order: list[str], level: str) -> str:
    parts = ['<h2 id="scale">Preference scale</h2>',
             '<p class="note">Thurstone Case V in JOD: a difference of 1 JOD means 75% of judgments prefer the '
             'better method (sigma = 1.4826). Bradley-Terry in log-odds units. Scores are mean zero within a '
             f'dataset; only differences mean something. Intervals: {level} percentile bootstrap resampling '
             'raters and images, so they generalise to other raters and images of the kind. Rows of '
             'disconnected groups (never compared with each other) are scaled apart and marked.</p>']
    for dataset in sets:
        part = scale[scale["dataset"] == dataset].set_index("method").reindex(order).dropna(subset=["thurstone"])
        if part["component"].nunique() > 1:
            parts.append(f'<p class="warning">{_esc(dataset)}: the methods fall into {part["component"].nunique()} '
                         'groups never compared with each other; scores are comparable only within a group.</p>')
        frame = pd.DataFrame({
            "method": [tables.method_label(m) for m in part.index], "judgments": part["n"].astype(int),
            "JOD": part["thurstone"], f"JOD {level}": [f"[{lo:+.2f}, {hi:+.2f}]" for lo, hi in
                                                       zip(part["thurstone_ci_low"], part["thurstone_ci_high"])],
            "BT": part["bt"], f"BT {level}": [f"[{lo:+.2f}, {hi:+.2f}]" for lo, hi in
                                              zip(part["bt_ci_low"], part["bt_ci_high"])],
            "group": part["component"].astype(int)})
        parts.append(f"<h3>{_esc(dataset)}</h3>" + _html_table(frame, {"JOD": 2, "BT": 2}, left=["method"]))
    return "\n".join(parts)


def _tests_section(tests: pd.DataFrame, fool: pd.DataFrame | None, level: str) -> str:
    parts = ['<h2 id="tests">Significance</h2>',
             '<p class="note">Per pair, two tests, Holm-adjusted over the pairs of a dataset: the exact binomial '
             'test on judgments (for these raters on these images; too liberal for a claim about raters in '
             'general, since one rater\'s judgments are not independent) and the exact sign test over raters '
             '(each rater votes for the method they preferred more often; it generalises to other raters).</p>']
    if not tests.empty:
        shown = tests.assign(method_a=tests["method_a"].map(tables.method_label),
                             method_b=tests["method_b"].map(tables.method_label))
        cols = ["dataset", "method_a", "method_b", "n", "share_a", "share_ci_low", "share_ci_high", "p_binomial_holm",
                "raters_a", "raters_b", "raters_tied", "p_sign_holm"]
        parts.append('<div class="wide">' + _html_table(
            shown[cols], {"share_a": 3, "share_ci_low": 3, "share_ci_high": 3, "p_binomial_holm": _fmt_p,
                          "p_sign_holm": _fmt_p}, left=["dataset", "method_a", "method_b"]) + "</div>")
    if fool is not None and not fool.empty:
        parts.append('<h3 id="fool">Fool rate</h3><p class="note">Share of judgments in which the method\'s '
                     f'output was taken for the original (50%: indistinguishable). {level} Clopper-Pearson '
                     'interval on judgments, and a bootstrap interval over raters.</p>')
        shown = fool.assign(method=fool["method"].map(tables.method_label))
        parts.append(_html_table(shown, {"fool_rate": 3, "cp_low": 3, "cp_high": 3, "rater_ci_low": 3,
                                         "rater_ci_high": 3, "p_binomial": _fmt_p}, left=["dataset", "method"]))
    return "\n".join(parts)


def _raters_section(raters: pd.DataFrame, rules: PairwiseFlagRules) -> str:
    rules_html = "".join(f"<li>{_esc(line)}</li>" for line in rules.describe())
    flagged = raters["flagged"].to_numpy()
    return ('<h2 id="raters">Raters</h2><p class="note">A rater is flagged for any of:</p>'
            f'<ul class="flags">{rules_html}</ul><p class="note">Flagged raters are listed, not removed: the scale '
            'above uses every rater.</p><div class="scroll">'
            + _html_table(raters, {"circular_share": 2, "consensus_agreement": 2}, left=["rater_id", "flag_reasons"],
                          row_class=lambda k: "flagged" if flagged[k] else "") + "</div>")


def write_pairwise_report(
    out_dir: str | os.PathLike,
    judgments: pd.DataFrame,
    stimuli: pd.DataFrame,
    study: Mapping,
    *,
    n_boot: int = 2000,
    seed: int | None = None,
    confidence: float = 0.95,
    methods: Sequence[str] | None = None,
    datasets: Sequence[str] | None = None,
    flag_rules: PairwiseFlagRules = PairwiseFlagRules(),
    image_formats: Sequence[str] = ("png", "svg"),
) -> dict[str, Path]:
    """Analyse a paired study and write every result to ``out_dir``.

    ``judgments``: the judgments frame (:mod:`analysis.pairwise`); ``stimuli``: one row per (dataset,
    image, method) with the objective metrics; ``study``: ``name``, ``seed``, ``protocol``,
    ``config_text`` and anything else to show. Returns the paths written: ``judgments,
    pairwise_scale, pairwise_scale_per_image, preference_matrix, pair_tests, raters, scale_tex``,
    ``fool_rate`` for a 2afc-real study, ``html``, and ``figure_<name>_<format>``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seed = int(study.get("seed", 0) or 0) if seed is None else int(seed)
    formats = list(dict.fromkeys(["png", *image_formats]))
    protocol = str(study.get("protocol", "pairwise"))
    test = pairwise.test_judgments(judgments)
    if test.empty:
        raise ValueError("no test judgments to analyse")
    order = list(methods) if methods is not None else tables.method_order(
        pd.unique(pd.concat([test["method_a"], test["method_b"]])))
    sets = tables.dataset_order(test["dataset"].unique(), datasets)
    level = level_label(confidence)

    scale = pairwise.scale_per_dataset(judgments, methods=order, n_boot=n_boot, confidence=confidence, seed=seed)
    per_image = pairwise.scale_per_image(judgments, methods=order)
    tests = pair_tests(judgments, methods=order, confidence=confidence)
    raters = pairwise_rater_report(judgments, flag_rules)
    fool = fool_rates(judgments, methods=order, confidence=confidence, n_boot=n_boot, seed=seed) \
        if protocol == "2afc-real" else None
    matrices = []
    for dataset in sets:
        part = test[test["dataset"] == dataset]
        names = [m for m in order if m in set(part["method_a"]) | set(part["method_b"])]
        matrix = pairwise.preference_matrix(part, names)
        matrices.append((dataset, matrix))
    metric_table = stats.metric_means(stimuli) if not stimuli.empty else pd.DataFrame()
    metric_cols = [m for m in stats.DEFAULT_METRICS if m in metric_table.columns and metric_table[m].notna().any()]

    paths: dict[str, Path] = {}

    def csv(key: str, frame: pd.DataFrame) -> None:
        paths[key] = out / f"{key}.csv"
        _write_csv(paths[key], frame)

    csv("judgments", judgments_csv_frame(judgments))
    csv("pairwise_scale", scale[SCALE_COLUMNS + ["component", "raters"]])
    csv("pairwise_scale_per_image", per_image[SCALE_PER_IMAGE_COLUMNS + ["component"]])
    csv("preference_matrix", pd.concat(
        [m.reset_index().melt(id_vars="preferred", var_name="over", value_name="share").assign(dataset=d)
         for d, m in matrices], ignore_index=True)[["dataset", "preferred", "over", "share"]].dropna())
    csv("pair_tests", tests)
    csv("raters", raters)
    if fool is not None:
        csv("fool_rate", fool)
    paths["scale_tex"] = out / "pairwise_scale.tex"
    write_text_atomic(paths["scale_tex"], scale_latex(scale, order, sets, confidence=confidence))

    figures = []

    def figure(key: str, draw, size, alt: str, caption: str) -> None:
        fig = Figure(figsize=size)
        draw(fig.add_subplot(1, 1, 1))
        fig.tight_layout()
        for fmt, path in _save_figure(fig, out / f"fig_{key}", formats).items():
            paths[f"figure_{key}_{fmt}"] = path
        figures.append((key, alt, caption))

    figure("scale", lambda ax: pairwise_plots.plot_scale(scale, ax, order, sets, confidence=confidence),
           (max(6.0, 1.1 * len(order)), 4.2), "Thurstone scale per method",
           f"JOD per method and dataset with {level} rater x image bootstrap intervals.")
    for dataset, matrix in matrices:
        figure(f"preference_{_slug(dataset)}",
               lambda ax, m=matrix, d=dataset: pairwise_plots.plot_preference_matrix(m, ax, title=f"{d}: share preferred"),
               (1.0 + 0.9 * len(matrix), 0.8 + 0.8 * len(matrix)), f"Preference matrix of {dataset}",
               f"{dataset}: share of judgments preferring the row method to the column method.")
    for dataset in sets:
        for metric in metric_cols:
            figure(f"plane_{_slug(dataset)}_{metric}",
                   lambda ax, d=dataset, m=metric: pairwise_plots.plot_scale_against_metric(scale, metric_table, ax, d, m),
                   (5.2, 4.0), f"{dataset}: JOD against {metric}",
                   f"{dataset}: perception-distortion plane, JOD against {metric} (dashed: the original).")

    paths["html"] = out / "report.html"
    fig_html = "".join(_img(paths[f"figure_{k}_png"], alt, caption, paths.get(f"figure_{k}_svg"))
                       for k, alt, caption in figures)
    files = "".join(f'<li><a href="{_esc(p.relative_to(out).as_posix())}">{_esc(p.name)}</a></li>'
                    for k, p in sorted(paths.items()) if k != "html")
    meta = pd.DataFrame([("name", study.get("name", "")), ("protocol", protocol), ("seed (bootstrap)", seed),
                         ("bootstrap replicates", n_boot), ("confidence level", confidence)]
                        + [(k, v) for k, v in study.items() if k not in ("name", "seed", "config_text", "protocol")],
                        columns=["key", "value"]).astype(str)
    page = _PAGE.substitute(
        title=_esc(study.get("name", "paired study")), css=_CSS, protocol=_esc(PROTOCOL_WORDS.get(protocol, protocol)),
        n_raters=test["rater_id"].nunique(), n_judgments=len(test), n_datasets=len(sets), n_methods=len(order),
        n_flagged=int(raters["flagged"].sum()), scale=_scale_section(scale, sets, order, level),
        tests=_tests_section(tests, fool, level), figures='<h2 id="figures">Figures</h2>' + fig_html,
        raters=_raters_section(raters, flag_rules),
        repro='<h2 id="repro">Reproducibility</h2>' + _html_table(meta, left=["key", "value"])
              + f"<h3>Study file</h3><pre>{_esc(study.get('config_text', '') or '(none given)')}</pre>",
        files=f'<h2 id="files">Files</h2><ul>{files}</ul>')
    write_text_atomic(paths["html"], page)
    return paths

