"""Figures of a paired-comparison study. Each function draws on a given Matplotlib ``ax`` and returns it
(no pyplot state, no saving: :mod:`analysis.pairwise_report` does that)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes

from analysis._frames import level_label, require_columns
from analysis.plots import METRIC_LABELS
from analysis.tables import method_label

__all__ = ["plot_preference_matrix", "plot_scale", "plot_scale_against_metric"]


def plot_scale(scale: pd.DataFrame, ax: Axes, methods: Sequence[str], datasets: Sequence[str], *,
               model: str = "thurstone", labels: Mapping[str, str] | None = None, confidence: float = 0.95) -> Axes:
    """Scores per method with their bootstrap intervals, one colour per dataset (mean zero within each
    dataset's connected component: compare within a dataset, not across)."""
    require_columns(scale, ["dataset", "method", model, f"{model}_ci_low", f"{model}_ci_high"], "scale")
    width = 0.8 / max(len(datasets), 1)
    colours = colormaps["tab10"]
    for k, dataset in enumerate(datasets):
        part = scale[scale["dataset"] == dataset].set_index("method").reindex(methods)
        x = np.arange(len(methods)) - 0.4 + width * (k + 0.5)
        y = part[model].to_numpy(float)
        err = np.vstack([y - part[f"{model}_ci_low"].to_numpy(float), part[f"{model}_ci_high"].to_numpy(float) - y])
        keep = ~np.isnan(y)
        ax.errorbar(x[keep], y[keep], yerr=np.nan_to_num(err[:, keep]), fmt="o", capsize=3, markersize=5,
                    color=colours(k % 10), label=str(dataset))
    ax.set_xticks(np.arange(len(methods)), [method_label(m, labels) for m in methods], rotation=35, ha="right")
    ax.axhline(0.0, color="0.7", linewidth=0.8)
    unit = "JOD (1 JOD = 75% preference)" if model == "thurstone" else "Bradley-Terry log-odds"
    ax.set_ylabel(unit)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(f"{'Thurstone Case V' if model == 'thurstone' else 'Bradley-Terry'} scale "
                 f"({level_label(confidence)} rater x image bootstrap interval)")
    ax.legend(title="dataset", fontsize=8, loc="upper left")
    return ax


def plot_preference_matrix(matrix: pd.DataFrame, ax: Axes, *, title: str,
                           labels: Mapping[str, str] | None = None) -> Axes:
    """Heat map of the share of judgments preferring the row method to the column method."""
    values = matrix.to_numpy(float)
    image = ax.imshow(np.ma.masked_invalid(values), cmap="RdBu", vmin=0.0, vmax=1.0)
    names = [method_label(m, labels) for m in matrix.index]
    ax.set_xticks(range(len(names)), names, rotation=35, ha="right")
    ax.set_yticks(range(len(names)), names)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            if np.isfinite(values[i, j]):
                ax.text(j, i, f"{values[i, j]:.0%}", ha="center", va="center", fontsize=8,
                        color="white" if abs(values[i, j] - 0.5) > 0.3 else "black")
    ax.set_xlabel("over")
    ax.set_ylabel("preferred")
    ax.set_title(title)
    ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share preferred")
    return ax


def plot_scale_against_metric(scale: pd.DataFrame, metrics: pd.DataFrame, ax: Axes, dataset: str, metric: str, *,
                              labels: Mapping[str, str] | None = None, reference: str = "hr") -> Axes:
    """The perception-distortion plane for paired data: the JOD scale against an objective metric."""
    part = scale[scale["dataset"] == dataset].merge(
        metrics.loc[metrics["dataset"] == dataset, ["method", metric]], on="method", how="left")
    points = part[part[metric].notna() & (part["method"] != reference)]
    colours = colormaps["tab20"]
    for k, row in enumerate(points.itertuples(index=False)):
        y = float(row.thurstone)
        yerr = [[y - float(row.thurstone_ci_low)], [float(row.thurstone_ci_high) - y]]
        x = float(getattr(row, metric))
        ax.errorbar([x], [y], yerr=np.nan_to_num(yerr), fmt="o", capsize=3, color=colours(k % 20))
        ax.annotate(method_label(row.method, labels), (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ref = part[part["method"] == reference]
    if not ref.empty:
        ax.axhline(float(ref["thurstone"].iloc[0]), color="0.4", linestyle="--", linewidth=1)
    ax.set_xlabel(METRIC_LABELS.get(metric, metric))
    ax.set_ylabel("JOD")
    ax.grid(alpha=0.3)
    ax.set_title(f"{dataset}: preference scale against {METRIC_LABELS.get(metric, metric).split(' [')[0]}")
    return ax
