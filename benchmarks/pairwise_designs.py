"""Paired-comparison planning and calibration: judgments needed per design, and interval coverage.

Part 1 - judgments until every per-image Thurstone score's 95% interval is within ``--target`` JOD
(``analysis.pairwise_planning.judgments_to_target``), for balanced rounds, random cells, and the
active design with each criterion (expected variance drop, the default; ASAP's information gain),
on two populations: SR-like methods with one far above the rest (as HR is), and evenly spaced ones.

Part 2 - coverage of the pooled scale's 95% intervals (two-way rater x image bootstrap) of the
planted JOD over simulated studies, against the Fisher interval and a bootstrap over raters only
(the wrong versions), on a small (5 images, like Set5) and a larger (14 images, like Set14) design.

Usage::

    python benchmarks/pairwise_designs.py [--seeds 8] [--target 0.3] [--studies 200] [--n-boot 300]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis import pairwise as pw  # noqa: E402
from analysis.pairwise_planning import judgments_to_target  # noqa: E402
from analysis.pairwise_simulation import PairedPopulation, simulate_judgments  # noqa: E402

POPULATIONS = {
    "one far above (0, .2, .5, 1, 3 JOD)": PairedPopulation(quality=(0.0, 0.2, 0.5, 1.0, 3.0), image_sd=0.3, rater_sd=0.3),
    "evenly spaced (0, 1, 2, 3, 4 JOD)": PairedPopulation(quality=(0.0, 1.0, 2.0, 3.0, 4.0), image_sd=0.3, rater_sd=0.3),
}
DESIGNS = [("balanced", "variance"), ("random", "variance"), ("active", "variance"), ("active", "information")]


def planning(seeds: int, target: float, images: int) -> None:
    print(f"judgments until every per-image 95% half-width <= {target} JOD ({images} images, 5 methods, "
          f"median and range over {seeds} seeds; 'n/r' = not reached in 20,000)")
    for label, population in POPULATIONS.items():
        print(f"\n{label}")
        for design, criterion in DESIGNS:
            start = time.perf_counter()
            got = [judgments_to_target(design, population=population, images=images, target=target, seed=s,
                                       check=50, criterion=criterion).judgments for s in range(seeds)]
            reached = [g for g in got if g is not None]
            name = design if design != "active" else f"active ({criterion})"
            print(f"  {name:24s} median {np.median(reached) if reached else float('nan'):8.0f}  "
                  f"range {min(reached, default=0)}-{max(reached, default=0)}  not reached {len(got) - len(reached)}  "
                  f"({time.perf_counter() - start:.1f} s)")


def coverage(studies: int, n_boot: int) -> None:
    population = PairedPopulation(quality=(0.0, 0.5, 1.0, 2.0), image_sd=0.4, rater_sd=0.3)
    print(f"\ncoverage of the planted pooled JOD by 95% intervals ({studies} studies, 20 raters, "
          f"population {population})")
    for images in (5, 14):
        two_way, fisher, raters_only = [], [], []
        for seed in range(studies):
            judgments, truth = simulate_judgments(20, images, population=population, seed=seed)
            target = truth.pooled_jod
            scale = pw.scale_per_dataset(judgments, methods=truth.methods, n_boot=n_boot, seed=seed)
            two_way.append((scale["thurstone_ci_low"] <= target) & (target <= scale["thurstone_ci_high"]))
            fisher.append(np.abs(scale["thurstone"] - target) <= 1.959964 * scale["thurstone_se"])
            wins = pw.win_matrix(judgments, truth.methods)
            counts, keys = pw.pair_counts(judgments, truth.methods, ["rater_id"])
            fit = pw.fit_scale(wins, "thurstone")
            w = wins.to_numpy()
            reps = pw._bootstrap_scores("thurstone", counts, np.arange(len(keys)), None, ((w + w.T) > 0).astype(float),
                                        fit.component, pw.DEFAULT_PRIOR, n_boot, np.random.default_rng(seed), fit.scores)
            lo, hi = np.quantile(reps, [0.025, 0.975], axis=0)
            raters_only.append((lo <= target) & (target <= hi))
        fmt = lambda c: " ".join(f"{v:.3f}" for v in np.mean(c, axis=0))  # noqa: E731
        print(f"  {images:2d} images: two-way bootstrap {fmt(two_way)} | Fisher {fmt(fisher)} | "
              f"raters-only bootstrap {fmt(raters_only)}  (per method)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--target", type=float, default=0.3)
    parser.add_argument("--images", type=int, default=3)
    parser.add_argument("--studies", type=int, default=200)
    parser.add_argument("--n-boot", type=int, default=300)
    args = parser.parse_args()
    planning(args.seeds, args.target, args.images)
    coverage(args.studies, args.n_boot)


if __name__ == "__main__":
    main()
