"""Figures of a MOS study. Each function draws on a given Matplotlib ``ax`` and returns it.

The module never creates figures, never touches ``pyplot`` state and never saves; callers (such as
:mod:`analysis.report`, which uses ``matplotlib.figure.Figure`` with the Agg canvas) do.

References
----------
1. Ledig, C. et al. (2017). CVPR, Figure 5 (colour-coded distribution of the ratings per method on
   BSD100, with the mean marked).
2. Blau, Y., Michaeli, T. (2018). The perception-distortion tradeoff. CVPR (the perception-distortion
   plane).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes

from analysis._frames import level_label, require_columns, test_rows
from analysis.stats import metric_means
from analysis.tables import dataset_order, method_label, method_order

__all__ = ["plot_mos", "plot_perception_distortion", "plot_rating_distribution"]

METRIC_LABELS = {"psnr_y": "PSNR (Y channel) [dB]", "ssim_y": "SSIM (Y channel)", "lpips": "LPIPS (lower is better)",
                 "dists": "DISTS (lower is better)", "niqe": "NIQE (lower is more natural)"}
_SCORES = np.arange(1, 6)


def plot_rating_distribution(
    ratings: pd.DataFrame,
    ax: Axes,
    dataset: str | None = None,
    methods: Sequence[str] | None = None,
    labels: Mapping[str, str] | None = None,
    cmap: str = "Blues",
    colorbar: bool = True,
) -> Axes:
    """Colour-coded distribution of the scores 1..5 per method with the mean marked (paper Fig. 5).

    Parameters
    ----------
    ratings : pandas.DataFrame
        Long ratings frame; test rows are drawn.
    ax : matplotlib.axes.Axes
        Where to draw.
    dataset : str, optional
        Dataset to show; default all test ratings pooled.
    methods : sequence of str, optional
        Column order; default the paper's order.
    labels : mapping, optional
        Display names; default the paper's (NN, Bicubic, ..., HR).
    cmap : str
        Colormap of the share of ratings in each bin.
    colorbar : bool
        Add a colour bar to the axes' figure.

    Returns
    -------
    matplotlib.axes.Axes
        One column per method; each bin (score 1..5, centred on its value) is coloured and labelled
        with the share of that method's ratings; the red diamond is the mean score.
    """
    data = test_rows(ratings)
    if dataset is not None:
        data = data.loc[data["dataset"] == dataset]
    present = set(data["method"].unique())
    order = [m for m in (methods or method_order(present)) if m in present]
    counts = (
        data.groupby(["method", "score"]).size().unstack("score").reindex(index=order, columns=_SCORES).fillna(0.0)
    )
    totals = counts.sum(axis=1).to_numpy()
    shares = (counts.to_numpy() / np.maximum(totals, 1)[:, None]).T  # (5, methods)
    image = ax.imshow(
        shares, origin="lower", extent=(-0.5, len(order) - 0.5, 0.5, 5.5), aspect="auto",
        cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest",
    )  # fmt: skip
    for j in range(len(order)):
        for k in range(5):
            share = shares[k, j]
            if share > 0:
                colour = "white" if share > 0.55 else "0.15"
                # Top-left corner of the bin, so the mean marker at the column's centre never hides it.
                ax.text(j - 0.42, k + 1.4, f"{share:.0%}", ha="left", va="top", fontsize=7, color=colour)
    means = data.groupby("method")["score"].mean().reindex(order).to_numpy()
    ax.plot(np.arange(len(order)), means, linestyle="none", marker="D", markersize=6,
            markerfacecolor="red", markeredgecolor="white", label="mean score", zorder=3)  # fmt: skip
    ax.set_xticks(np.arange(len(order)), [method_label(m, labels) for m in order], rotation=35, ha="right")
    ax.set_yticks(_SCORES)
    ax.set_ylabel("score")
    ax.set_xlim(-0.5, len(order) - 0.5)
    n_text = f"{int(totals.min())}" if len(totals) and totals.min() == totals.max() else "varying numbers of"
    where = f" on {dataset}" if dataset else ""
    ax.set_title(f"Rating distribution{where}: {n_text} ratings per method, red ◆ = mean")
    if colorbar:
        bar = ax.figure.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
        bar.set_label("share of ratings")
    return ax


def _interval_columns(mos: pd.DataFrame, interval: str) -> tuple[str, str]:
    if interval == "t":
        return "ci_low", "ci_high"
    if interval == "bootstrap":
        require_columns(mos, ["boot_low", "boot_high"], "mos")
        return "boot_low", "boot_high"
    raise ValueError("interval must be 't' or 'bootstrap'")


def plot_mos(
    mos: pd.DataFrame,
    ax: Axes,
    methods: Sequence[str] | None = None,
    datasets: Sequence[str] | None = None,
    interval: str = "t",
    labels: Mapping[str, str] | None = None,
    confidence: float = 0.95,
) -> Axes:
    """MOS per method with confidence-interval error bars, one colour per dataset.

    Parameters
    ----------
    mos : pandas.DataFrame
        :func:`analysis.stats.mos_table` output, optionally merged with
        :func:`analysis.stats.bootstrap_mos_ci` (``boot_low``, ``boot_high``).
    ax : matplotlib.axes.Axes
    methods, datasets : sequence of str, optional
        Orders; default the paper's.
    interval : {"t", "bootstrap"}
        Which interval the error bars show.
    labels : mapping, optional
        Method display names.
    confidence : float
        Level the intervals of ``mos`` were computed at; the title states it.

    Returns
    -------
    matplotlib.axes.Axes
    """
    require_columns(mos, ["dataset", "method", "mos"], "mos")
    low, high = _interval_columns(mos, interval)
    order = list(methods) if methods is not None else method_order(mos["method"].unique())
    sets = dataset_order(mos["dataset"].unique(), datasets)
    width = 0.8 / max(len(sets), 1)
    colours = colormaps["tab10"]
    for k, d in enumerate(sets):
        part = mos.loc[mos["dataset"] == d].set_index("method").reindex(order)
        x = np.arange(len(order)) - 0.4 + width * (k + 0.5)
        y = part["mos"].to_numpy(dtype=float)
        err = np.vstack([y - part[low].to_numpy(dtype=float), part[high].to_numpy(dtype=float) - y])
        keep = ~np.isnan(y)
        ax.errorbar(x[keep], y[keep], yerr=np.nan_to_num(err[:, keep]), fmt="o", capsize=3, markersize=5,
                    color=colours(k % 10), label=str(d))  # fmt: skip
    ax.set_xticks(np.arange(len(order)), [method_label(m, labels) for m in order], rotation=35, ha="right")
    ax.set_ylim(0.8, 5.2)
    ax.set_yticks(_SCORES)
    ax.set_ylabel("MOS")
    ax.grid(axis="y", alpha=0.3)
    what = f"{level_label(confidence)} {'t' if interval == 't' else 'two-way bootstrap'} interval"
    ax.set_title(f"Mean opinion score per method ({what})")
    ax.legend(title="dataset", fontsize=8, loc="upper left")
    return ax


def _correlation_text(correlations: pd.DataFrame | None, dataset: str, metric: str) -> str:
    if correlations is None or correlations.empty:
        return ""
    row = correlations.loc[(correlations["dataset"] == dataset) & (correlations["metric"] == metric)]
    if row.empty:
        return ""
    r = row.iloc[0]
    return (
        f"Spearman ρ = {r.spearman:+.2f} [{r.spearman_low:+.2f}, {r.spearman_high:+.2f}]\n"
        f"Kendall τ = {r.kendall:+.2f} [{r.kendall_low:+.2f}, {r.kendall_high:+.2f}]"
    )


def plot_perception_distortion(
    mos: pd.DataFrame,
    metrics: pd.DataFrame,
    ax: Axes,
    dataset: str,
    metric: str = "psnr_y",
    correlations: pd.DataFrame | None = None,
    interval: str = "t",
    labels: Mapping[str, str] | None = None,
    reference: str = "hr",
) -> Axes:
    """The perception-distortion plane: MOS against an objective metric, one point per method.

    Parameters
    ----------
    mos : pandas.DataFrame
        :func:`analysis.stats.mos_table` output (optionally with bootstrap columns).
    metrics : pandas.DataFrame
        The stimuli frame (per image) or :func:`analysis.stats.metric_means` output.
    ax : matplotlib.axes.Axes
    dataset : str
        Dataset to draw.
    metric : str
        ``psnr_y``, ``ssim_y``, ``lpips``, ``dists`` or ``niqe`` (any column of ``metrics``).
    correlations : pandas.DataFrame, optional
        :func:`analysis.stats.metric_correlations` output; the matching row's Spearman and Kendall
        coefficients with their bootstrap intervals are printed under the title.
    interval : {"t", "bootstrap"}
        Vertical error bars.
    labels : mapping, optional
        Method display names.
    reference : str
        The HR original; it has no distortion value, so its MOS is drawn as a dashed line.

    Returns
    -------
    matplotlib.axes.Axes
        Methods near the top are perceptually better; moving right (higher PSNR or SSIM) means less
        distortion. Blau and Michaeli (2018) show the two cannot both be optimal.
    """
    low, high = _interval_columns(mos, interval)
    if "image" in metrics.columns:
        metrics = metric_means(metrics)
    require_columns(metrics, ["dataset", "method", metric], "metrics")
    part = mos.loc[mos["dataset"] == dataset].merge(
        metrics.loc[metrics["dataset"] == dataset, ["method", metric]], on="method", how="left"
    )
    points = part.loc[part[metric].notna() & (part["method"] != reference)]
    colours = colormaps["tab20"]
    for k, row in enumerate(points.itertuples(index=False)):
        y = float(row.mos)
        yerr = [[y - float(getattr(row, low))], [float(getattr(row, high)) - y]]
        x = float(getattr(row, metric))
        ax.errorbar([x], [y], yerr=np.nan_to_num(yerr), fmt="o", capsize=3, color=colours(k % 20))
        ax.annotate(method_label(row.method, labels), (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ref = part.loc[part["method"] == reference]
    if not ref.empty:
        ref_mos = float(ref["mos"].iloc[0])
        ax.axhline(ref_mos, color="0.4", linestyle="--", linewidth=1)
        ax.annotate(
            f"{method_label(reference, labels)} MOS {ref_mos:.2f}", (0.01, ref_mos),
            xycoords=("axes fraction", "data"), textcoords="offset points", xytext=(2, 3), fontsize=8, color="0.3",
        )  # fmt: skip
    ax.set_xlabel(METRIC_LABELS.get(metric, metric))
    ax.set_ylabel("MOS")
    ax.set_ylim(0.8, 5.2)
    ax.grid(alpha=0.3)
    text = _correlation_text(correlations, dataset, metric)
    short = METRIC_LABELS.get(metric, metric).split(" (")[0]
    ax.set_title(f"{dataset}: MOS against {short}" + ("\n" + text if text else ""), fontsize=9.5)
    return ax
