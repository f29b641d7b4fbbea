"""The report build's analysis without the database: time, peak memory and a profile.

    python benchmarks/report_analysis.py --size 100000 --profile /tmp/prof.out
    python benchmarks/report_analysis.py --size 1000000 --only mle
    python benchmarks/report_analysis.py --size 1000000 --only df

The ratings and stimuli frames are made in memory with the design and score model of
``benchmarks/dashboard_report.py`` (same seed, same draws), so what is timed here is what a report
build spends after its two database reads: ``--only mle`` runs the P.910 rater model alone
(``screening.mle_scores``), ``--only df`` one evaluation of its residual degrees of freedom (the
R x R inversion an iteration costs), the default the whole ``analysis.report.write_report`` into a
temporary folder. Peak memory is VmHWM, reset just before the timed call.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
# Loaded by path: benchmarks/analysis.py would shadow the analysis package on sys.path.
_spec = importlib.util.spec_from_file_location("dashboard_report", REPO / "benchmarks" / "dashboard_report.py")
_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_bench)
_design, _reset_peak, _status_mb = _bench._design, _bench._reset_peak, _bench._status_mb


def frames(size: str, seed: int = 16) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(ratings, stimuli) as ``ratings.export`` would read them from ``dashboard_report``'s study."""
    rng = np.random.default_rng(seed)
    datasets, per_rater = _design(size, rng)
    methods = list(dict.fromkeys(m for _, ms in datasets.values() for m in ms))
    stim_rows = []
    for name, (n_images, ds_methods) in datasets.items():
        for i in range(n_images):
            for m in ds_methods:
                stim_rows.append((name, f"img_{i:06d}", m, 20 + 10 * rng.random(), rng.random()))
    stimuli = pd.DataFrame(stim_rows, columns=["dataset", "image", "method", "psnr_y", "ssim_y"])
    stimuli["sha256"], stimuli["file"], stimuli["state"] = "0" * 64, "-", "done"
    true = {m: 1 + 4 * k / (len(methods) - 1) for k, m in enumerate(methods)}
    rows = []
    for r, own in enumerate(per_rater):
        bias = rng.normal(0, 0.3)
        for position, (d, i, m, kind, expected) in enumerate(own[:-1]):
            score = int(np.clip(np.rint(true[m] + bias + rng.normal(0, 0.7)), 1, 5))
            rows.append((f"r{r:05d}", d, f"img_{i:06d}", m, score, kind, expected, int(rng.integers(800, 6000)),
                         position))
    ratings = pd.DataFrame(rows, columns=["rater_id", "dataset", "image", "method", "score", "kind",
                                          "expected_score", "response_ms", "position"])
    ratings["created_at"] = pd.Timestamp("2026-12-01T00:00:00Z")
    return ratings, stimuli


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="100000", help="'paper' or a number of ratings")
    parser.add_argument("--only", choices=["report", "mle", "df"], default="report",
                        help="report: write_report; mle: mle_scores; df: one evaluation of the rater "
                             "model's residual degrees of freedom (one R x R inversion) at random weights")
    parser.add_argument("--n-boot", type=int, default=2000)
    parser.add_argument("--profile", help="write a cProfile of the timed call here")
    args = parser.parse_args()
    ratings, stimuli = frames(args.size)
    from analysis import report, screening
    from analysis._frames import STIMULUS_KEY, test_rows

    if args.only == "mle":
        def call():
            return screening.mle_scores(ratings)
    elif args.only == "df":
        data = test_rows(ratings)
        r_codes, raters = pd.factorize(data["rater_id"], sort=True)
        s_codes = data.groupby(list(STIMULUS_KEY), sort=True).ngroup().to_numpy()
        nij = screening._incidence(r_codes, s_codes, len(raters), int(s_codes.max()) + 1)
        weights = np.random.default_rng(0).uniform(1, 3, len(raters))

        def call():
            return screening._residual_df(nij, weights, r_codes, s_codes, len(raters))
    else:
        out = tempfile.mkdtemp(prefix="report_analysis_")

        def call():
            return report.write_report(out, ratings, stimuli, {"name": "bench", "seed": 16}, n_boot=args.n_boot)
    load = os.getloadavg()[0]
    _reset_peak()
    before = _status_mb("VmRSS")
    profiler = cProfile.Profile() if args.profile else None
    start = time.perf_counter()
    if profiler:
        profiler.enable()
    result = call()
    if profiler:
        profiler.disable()
        profiler.dump_stats(args.profile)
    seconds = time.perf_counter() - start
    peak = _status_mb("VmHWM")
    print(f"{args.size} ({len(ratings)} ratings, {ratings['rater_id'].nunique()} raters) {args.only}: "
          f"{seconds:.2f} s, RSS {before:.0f} MB before, peak {peak:.0f} MB (+{peak - before:.0f} MB), "
          f"load {load:.1f} -> {os.getloadavg()[0]:.1f}", flush=True)
    if args.only == "mle":
        print(f"iterations {result.n_iter}, converged {result.converged}")


if __name__ == "__main__":
    main()
