"""Time the analysis of a MOS study of the paper's size (26 raters) and of ten times that (260 raters).

The study is simulated at the MOS of the paper's Tables 1 and 2: 3 datasets with 12/12/9 methods on
5/14/100 images, so each rater gives 1128 ratings (29,328 in all at 26 raters). Usage::

    python benchmarks/analysis.py [--n-boot 2000] [--raters 26 260] [--repeat 1]

Prints one table (step, raters, ratings, seconds); each time is the best of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import hashlib
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis import planning, plots, report, screening, stats, tables  # noqa: E402

IMAGES = {"Set5": 5, "Set14": 14, "BSD100": 100}


def _stimuli(ratings: pd.DataFrame) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    keys = ratings.loc[ratings["kind"] == "test", ["dataset", "image", "method"]].drop_duplicates()
    paper = pd.concat([tables.PAPER_TABLE2, tables.PAPER_TABLE1])[["dataset", "method", "psnr_y", "ssim_y"]]
    stim = keys.merge(paper, on=["dataset", "method"])
    stim["psnr_y"] += rng.normal(0, 0.8, len(stim))
    stim["ssim_y"] += rng.normal(0, 0.01, len(stim))
    stim.loc[stim["method"] == "hr", ["psnr_y", "ssim_y"]] = np.nan
    stim["file"] = "stimuli/" + stim["dataset"] + "/" + stim["method"] + "/" + stim["image"] + ".png"
    stim["sha256"] = [hashlib.sha256(f.encode()).hexdigest() for f in stim["file"]]
    return stim


def _plots(ratings: pd.DataFrame, stimuli: pd.DataFrame, n_boot: int) -> None:
    mos = stats.mos_table(ratings)
    corr = stats.metric_correlations(ratings, stimuli, n_boot=n_boot)
    for d in IMAGES:
        fig = Figure(figsize=(11, 4.6))
        FigureCanvasAgg(fig)
        plots.plot_rating_distribution(ratings, fig.add_subplot(), dataset=d)
        fig.savefig(_sink(), format="png", dpi=110)
    fig = Figure(figsize=(11, 4.6))
    FigureCanvasAgg(fig)
    plots.plot_mos(mos, fig.add_subplot())
    fig.savefig(_sink(), format="png", dpi=110)
    for metric in ("psnr_y", "ssim_y"):
        fig = Figure(figsize=(17, 5))
        FigureCanvasAgg(fig)
        for k, d in enumerate(IMAGES):
            ax = fig.add_subplot(1, 3, k + 1)
            plots.plot_perception_distortion(mos, stimuli, ax, d, metric=metric, correlations=corr)
        fig.savefig(_sink(), format="png", dpi=110)


def _sink():
    import io

    return io.BytesIO()


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-boot", type=int, default=2000)
    parser.add_argument("--raters", type=int, nargs="+", default=[26, 260])
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    true_mos = tables.paper_true_mos()
    rows = []
    for n_raters in args.raters:
        ratings = planning.simulate_study(true_mos, n_raters=n_raters, n_images=IMAGES, seed=1, n_repeats=10,
                                          n_gold=20, image_sd=0.3, n_random_raters=max(1, n_raters // 26))  # fmt: skip
        stimuli = _stimuli(ratings)
        n_test = int((ratings["kind"] == "test").sum())
        b = args.n_boot
        steps = [
            ("mos_table + per_image_mos", lambda: (stats.mos_table(ratings), stats.per_image_mos(ratings))),
            (f"bootstrap_mos_ci (n_boot={b})", lambda: stats.bootstrap_mos_ci(ratings, n_boot=b, seed=1)),
            ("pairwise_tests (Wilcoxon + Holm)", lambda: stats.pairwise_tests(ratings)),
            ("mle_scores (P.910 Annex E)", lambda: screening.mle_scores(ratings)),
            ("krippendorff_alpha (interval + ordinal)",
             lambda: [screening.krippendorff_alpha(ratings, level) for level in ("interval", "ordinal")]),
            ("rater_report + reliability_summary (all screening)",
             lambda: screening.reliability_summary(ratings, screening.rater_report(ratings))),
            (f"plots (6 figures, PNG; correlations n_boot={b})", lambda: _plots(ratings, stimuli, b)),
        ]  # fmt: skip
        for name, fn in steps:
            rows.append((name, n_raters, n_test, _best(fn, args.repeat)))
        with tempfile.TemporaryDirectory() as tmp:
            t = _best(lambda: report.write_report(tmp, ratings, stimuli, {"name": "bench", "seed": 1}, n_boot=b),
                      args.repeat)  # fmt: skip
        rows.append((f"write_report (everything, n_boot={b})", n_raters, n_test, t))
    table = pd.DataFrame(rows, columns=["step", "raters", "test ratings", "seconds"])
    print(f"# {platform.processor() or platform.machine()}, Python {platform.python_version()}, "
          f"numpy {np.__version__}, pandas {pd.__version__}")  # fmt: skip
    print(table.to_string(index=False, formatters={"seconds": "{:.2f}".format}))


if __name__ == "__main__":
    main()
