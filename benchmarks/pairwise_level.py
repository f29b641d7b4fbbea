"""Family-wise error of the pairwise tests on null studies with rater x method and image x method effects.

Every method has the same population MOS, so every pairwise null holds; raters prefer some methods
(``rater_method_sd``) and images suit some methods (``image_method_sd``), as real raters and images
do. Each study is tested with the paper's paired Wilcoxon test (``stats.pairwise_tests``) and with
the two-way cluster-robust t test of the MOS difference (``stats.mos_differences``), both
Holm-adjusted over the dataset's pairs, and with the same t test on the two-way bootstrap standard
error (``boot_se``), the alternative that was measured and not chosen. Printed per design: the
share of studies with any Holm-adjusted rejection at 0.05 (the family-wise error, FWER, with its
Clopper-Pearson 95% interval), the share of single pairs rejected unadjusted, and the coverage of
the 95% interval of the difference (true difference 0). Three wrong versions are measured beside
them: no Holm adjustment, the normal quantile in place of Student's t, and resampling raters only
(images fixed).

Usage::

    python benchmarks/pairwise_level.py [--studies 500] [--n-boot 1000] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis import planning, stats  # noqa: E402
from analysis.planning import _clopper_pearson  # noqa: E402

METHODS = {f"m{k}": 3.0 for k in range(6)}  # 15 pairs, all null
POPULATION = {"bias_sd": 0.3, "inconsistency": (0.4, 0.9), "image_sd": 0.3, "rater_method_sd": 0.3,
              "image_method_sd": 0.3}  # fmt: skip
DESIGNS = {
    "crossed: 12 raters x 8 images x 6 methods": {"n_raters": 12, "n_images": 8},
    "balanced 60%: 20 raters x 10 images x 6 methods": {"n_raters": 20, "n_images": 10, "rating_fraction": 0.6},
}


def _raters_only_p(ratings: pd.DataFrame, n_boot: int, seed: int) -> np.ndarray:
    """p-values of the bootstrap-t test when only raters are resampled (a wrong version)."""
    data = ratings[ratings["kind"] == "test"]
    methods = sorted(METHODS)
    sums, counts, raters, images = stats._cell_sums(data, methods)
    rng = np.random.default_rng(seed)
    boot = stats._two_way_means(sums, counts, stats._resample_counts(rng, len(raters), n_boot),
                                np.ones((n_boot, len(images))))  # fmt: skip
    mos = stats._method_totals(sums, len(methods)) / stats._method_totals(counts, len(methods))
    a, b = np.triu_indices(len(methods), 1)
    t = (mos[a] - mos[b]) / np.std(boot[:, a] - boot[:, b], axis=0, ddof=1)
    return 2 * sps.t.sf(np.abs(t), len(raters) - 1)


def run(studies: int, n_boot: int, seed: int) -> pd.DataFrame:
    rows = []
    for name, design in DESIGNS.items():
        hits = {k: [] for k in ("wilcoxon", "twoway", "boot", "unadjusted", "normal", "raters_only")}
        single = {"wilcoxon": [], "twoway": [], "boot": []}
        covered = {"twoway": [], "boot": []}
        for s in range(studies):
            ratings = planning.simulate_study({"D": METHODS}, seed=seed + s, **POPULATION, **design)
            pw = stats.pairwise_tests(ratings)
            diff = stats.mos_differences(ratings, n_boot=n_boot, seed=seed + s)
            p_boot = 2 * sps.t.sf(np.abs(diff["mean_diff"] / diff["boot_se"]), diff["df"])
            half_boot = sps.t.ppf(0.975, diff["df"]) * diff["boot_se"]
            hits["wilcoxon"].append((pw["p_holm"] < 0.05).any())
            hits["twoway"].append((diff["p_holm"] < 0.05).any())
            hits["boot"].append((stats.holm(p_boot) < 0.05).any())
            hits["unadjusted"].append((diff["p_value"] < 0.05).any())
            hits["normal"].append((stats.holm(2 * sps.norm.sf(np.abs(diff["t"]))) < 0.05).any())
            hits["raters_only"].append((stats.holm(_raters_only_p(ratings, n_boot, seed + s)) < 0.05).any())
            single["wilcoxon"].append((pw["p_value"] < 0.05).mean())
            single["twoway"].append((diff["p_value"] < 0.05).mean())
            single["boot"].append((p_boot < 0.05).mean())
            covered["twoway"].append(((diff["diff_low"] <= 0) & (0 <= diff["diff_high"])).mean())
            covered["boot"].append((diff["mean_diff"].abs() <= half_boot).mean())
        labels = {
            "wilcoxon": "paired Wilcoxon (the paper's), Holm",
            "twoway": "two-way cluster-robust t (mos_differences), Holm",
            "boot": "two-way bootstrap SE, t, Holm (not chosen)",
            "unadjusted": "wrong: two-way t without Holm",
            "normal": "wrong: two-way SE with the normal quantile, Holm",
            "raters_only": "wrong: raters resampled, images fixed, Holm",
        }
        for key, label in labels.items():
            k = int(np.sum(hits[key]))
            lo, hi = _clopper_pearson(np.array(k), studies)
            rows.append({"design": name, "test": label, "fwer": k / studies, "fwer_low": float(lo),
                         "fwer_high": float(hi),
                         "single": np.mean(single[key]) if key in single else np.nan,
                         "coverage": np.mean(covered[key]) if key in covered else np.nan})  # fmt: skip
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=500)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start = time.perf_counter()
    table = run(args.studies, args.n_boot, args.seed)
    pop = ", ".join(f"{k} {v}" for k, v in POPULATION.items())
    for design, part in table.groupby("design", sort=False):
        print(f"\n{design}; {pop}; {args.studies} null studies, n_boot {args.n_boot}\n")
        print("| test | FWER (any p_holm < 0.05) | 95% interval | single pairs p < 0.05 | 95% CI coverage of 0 |")
        print("|---|---:|---|---:|---:|")
        for r in part.itertuples(index=False):
            single = "" if np.isnan(r.single) else f"{r.single:.3f}"
            cover = "" if np.isnan(r.coverage) else f"{r.coverage:.3f}"
            print(f"| {r.test} | {r.fwer:.3f} | [{r.fwer_low:.3f}, {r.fwer_high:.3f}] | {single} | {cover} |")
    print(f"\n{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
