"""Significance of paired preferences, and the fool rate of a two-alternative "which is real?" study.

Two kinds of test per pair of methods, as for MOS (``analysis.stats``): one on judgments, which
holds for these raters on these images, and one on raters, which generalises to other raters.

- Exact binomial test on the judgments of the pair (H0: each judgment prefers either with
  probability 1/2). Judgments of one rater are not independent (a rater with a taste for sharpness
  prefers the GAN on every image), so this test is too liberal for a claim about raters in general.
- Sign test over raters: each rater votes for the method they preferred in most of their judgments
  of the pair (ties drop out), and the votes are tested exactly against 1/2. It holds its level
  whatever each rater's own preference, and is what "raters prefer A" means.

Both are Holm-adjusted over the pairs of a dataset. The fool rate (SR3's 2AFC against the original:
"which one is the real photograph?") is reported per method with a Clopper-Pearson interval on
judgments and a percentile interval from a bootstrap over raters.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from analysis._frames import ordered, percentile_interval
from analysis.pairwise import test_judgments
from analysis.stats import holm

PAIR_TEST_COLUMNS = [
    "dataset", "method_a", "method_b", "n", "wins_a", "share_a", "share_ci_low", "share_ci_high", "p_binomial",
    "p_binomial_holm", "raters", "raters_a", "raters_b", "raters_tied", "p_sign", "p_sign_holm",
]
FOOL_RATE_COLUMNS = [
    "dataset", "method", "n", "fooled", "fool_rate", "cp_low", "cp_high", "rater_ci_low", "rater_ci_high",
    "raters", "p_binomial",
]

__all__ = ["FOOL_RATE_COLUMNS", "PAIR_TEST_COLUMNS", "fool_rates", "pair_tests"]


def _clopper_pearson(k: int, n: int, confidence: float) -> tuple[float, float]:
    if n == 0:
        return float("nan"), float("nan")
    ci = sps.binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="exact")
    return float(ci.low), float(ci.high)


def _binomial_p(k: int, n: int) -> float:
    return float(sps.binomtest(int(k), int(n), 0.5).pvalue) if n else float("nan")


def pair_tests(judgments: pd.DataFrame, *, methods: Sequence[str] | None = None,
               confidence: float = 0.95) -> pd.DataFrame:
    """One row per dataset and compared pair (``method_a`` before ``method_b`` in ``methods`` order).

    ``share_a`` is the share of judgments preferring ``method_a``, with its Clopper-Pearson interval;
    ``raters_a``/``raters_b`` count raters whose majority preferred that method, ``raters_tied``
    those split evenly; ``p_sign`` is the exact sign test over the untied raters.
    """
    rows = test_judgments(judgments)
    out = []
    for dataset, part in rows.groupby("dataset", sort=False):
        names = ordered(pd.concat([part["method_a"], part["method_b"]]), methods)
        rank = {m: k for k, m in enumerate(names)}
        first = np.where(part["method_a"].map(rank) <= part["method_b"].map(rank), part["method_a"], part["method_b"])
        second = np.where(part["method_a"].map(rank) <= part["method_b"].map(rank), part["method_b"], part["method_a"])
        frame = pd.DataFrame({"rater_id": part["rater_id"].to_numpy(), "a": first, "b": second,
                              "won": (part["choice"].to_numpy() == first).astype(int)})
        block = []
        for a, b in itertools.combinations(names, 2):
            pair = frame[(frame["a"] == a) & (frame["b"] == b)]
            if pair.empty:
                continue
            n, k = len(pair), int(pair["won"].sum())
            lo, hi = _clopper_pearson(k, n, confidence)
            per_rater = pair.groupby("rater_id")["won"].agg(["sum", "count"])
            lead = 2 * per_rater["sum"] - per_rater["count"]
            ra, rb, tied = int((lead > 0).sum()), int((lead < 0).sum()), int((lead == 0).sum())
            block.append({"dataset": dataset, "method_a": a, "method_b": b, "n": n, "wins_a": k, "share_a": k / n,
                          "share_ci_low": lo, "share_ci_high": hi, "p_binomial": _binomial_p(k, n),
                          "raters": len(per_rater), "raters_a": ra, "raters_b": rb, "raters_tied": tied,
                          "p_sign": _binomial_p(ra, ra + rb)})
        if block:
            block_frame = pd.DataFrame(block)
            block_frame["p_binomial_holm"] = holm(block_frame["p_binomial"].to_numpy())
            block_frame["p_sign_holm"] = holm(block_frame["p_sign"].to_numpy())
            out.append(block_frame)
    if not out:
        return pd.DataFrame(columns=PAIR_TEST_COLUMNS)
    return pd.concat(out, ignore_index=True)[PAIR_TEST_COLUMNS]


def fool_rates(judgments: pd.DataFrame, *, reference: str = "hr", methods: Sequence[str] | None = None,
               confidence: float = 0.95, n_boot: int = 2000, seed: int | None = 0) -> pd.DataFrame:
    """Per dataset and method, the share of its judgments against ``reference`` in which the method was
    taken for the real photograph (50%: indistinguishable from it).

    ``cp_low``/``cp_high``: Clopper-Pearson interval on the judgments (these raters, these images);
    ``rater_ci_*``: percentile interval of a bootstrap over raters, which also carries the spread
    between raters; ``p_binomial``: exact two-sided test of a fool rate of 1/2 on the judgments.
    Judgments that do not involve ``reference`` are ignored.
    """
    rows = test_judgments(judgments)
    rows = rows[(rows["method_a"] == reference) ^ (rows["method_b"] == reference)]
    out = []
    for k_dataset, (dataset, part) in enumerate(rows.groupby("dataset", sort=False)):
        other = np.where(part["method_a"] == reference, part["method_b"], part["method_a"])
        fooled = (part["choice"].to_numpy() != reference).astype(int)
        frame = pd.DataFrame({"rater_id": part["rater_id"].to_numpy(), "method": other, "fooled": fooled})
        rng = np.random.default_rng(None if seed is None else [seed, k_dataset])
        for method in ordered(frame["method"], methods):
            cell = frame[frame["method"] == method]
            n, k = len(cell), int(cell["fooled"].sum())
            lo, hi = _clopper_pearson(k, n, confidence)
            per_rater = cell.groupby("rater_id")["fooled"].agg(["sum", "count"]).to_numpy(float)
            r_lo = r_hi = float("nan")
            if n_boot and len(per_rater) > 1:
                draws = rng.multinomial(len(per_rater), np.full(len(per_rater), 1.0 / len(per_rater)), size=n_boot)
                rates = (draws @ per_rater[:, 0]) / (draws @ per_rater[:, 1])
                r_lo, r_hi = (float(x) for x in percentile_interval(rates, confidence))
            out.append({"dataset": dataset, "method": method, "n": n, "fooled": k, "fool_rate": k / n,
                        "cp_low": lo, "cp_high": hi, "rater_ci_low": r_lo, "rater_ci_high": r_hi,
                        "raters": len(per_rater), "p_binomial": _binomial_p(k, n)})
    return pd.DataFrame(out, columns=FOOL_RATE_COLUMNS)
