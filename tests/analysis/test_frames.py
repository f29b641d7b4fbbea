"""analysis._frames: the one rule for missing scores, held by every function that reads ratings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis import io as aio
from analysis import screening, stats

FUNCTIONS = {
    "mos_table": stats.mos_table,
    "per_image_mos": stats.per_image_mos,
    "bootstrap_mos_ci": lambda r: stats.bootstrap_mos_ci(r, n_boot=50, seed=1),
    "pairwise_tests": stats.pairwise_tests,
    "mos_differences": lambda r: stats.mos_differences(r, n_boot=50, seed=1),
    "bt500_screening": screening.bt500_screening,
    "loo_correlations": screening.loo_correlations,
    "gold_agreement": screening.gold_agreement,
    "test_retest": screening.test_retest,
    "mle_quality": lambda r: screening.mle_scores(r).quality,
    "mle_raters": lambda r: screening.mle_scores(r).raters,
    "krippendorff_alpha": lambda r: pd.DataFrame({"alpha": [screening.krippendorff_alpha(r)]}),
    "rater_report": screening.rater_report,
    "ratings_csv_frame": lambda r: aio.ratings_csv_frame(r).reset_index(drop=True),
    "sureal_dataset_text": lambda r: pd.DataFrame({"text": [aio.sureal_dataset_text(r)]}),
}


@pytest.fixture(scope="module")
def with_missing(small_study):
    """The small study plus rows without a score: per rater, one on a stimulus nobody rated and a
    second test, repeat and gold row of a rated one."""
    ratings, _ = small_study
    again = ratings.groupby(["rater_id", "kind"]).head(1)
    unrated = again[again["kind"] == "test"].assign(image="img_unrated")
    extra = pd.concat([again, unrated], ignore_index=True)
    extra["score"] = np.nan
    extra.loc[extra.index[::2], "score"] = None
    return ratings, pd.concat([ratings.astype({"score": float}), extra], ignore_index=True)


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_a_row_without_score_is_no_rating(with_missing, name):
    # Before the rule, bootstrap_mos_ci and mle_scores returned NaN everywhere and bt500_screening
    # counted the row in the rater's J; now the row changes nothing.
    ratings, padded = with_missing
    expected = FUNCTIONS[name](ratings)
    got = FUNCTIONS[name](padded)
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)


@pytest.mark.parametrize("kinds", [["test", "test", "test"], ["test", "gold", "test"]])
def test_test_rows_is_a_new_frame_even_when_every_row_counts(kinds):
    # When no row is dropped test_rows hands back the rows without a take; what the caller then
    # writes (a new column, a changed score) must still not reach the ratings frame it was given.
    from analysis._frames import test_rows

    ratings = pd.DataFrame({"rater_id": ["a", "b", "c"], "dataset": "D", "image": "i", "method": "m",
                            "score": [1, 2, 3], "kind": kinds})
    before = ratings.copy()
    out = test_rows(ratings)
    assert out is not ratings and out["score"].dtype == float
    out["extra"] = 1
    out.loc[out.index[0], "score"] = 5.0
    out["rater_id"] = out["rater_id"] + "x"
    pd.testing.assert_frame_equal(ratings, before)
