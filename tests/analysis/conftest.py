"""Shared fixtures of the analysis tests: simulated studies with known truth (fixed seeds).

Session-scoped frames are shared between tests; every function under test must leave its inputs
unchanged, and ``assert_unchanged`` checks that where it matters.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from analysis import planning, tables

PAPER_IMAGES = {"Set5": 5, "Set14": 14, "BSD100": 100}


@pytest.fixture(scope="session")
def small_study():
    """12 raters, two datasets, four methods, 6 images; repeats, gold items and one random rater."""
    true_mos = {
        "Set5": {"nearest": 1.3, "bicubic": 2.0, "srgan-vgg54": 3.6, "hr": 4.3},
        "BSD100": {"nearest": 1.1, "bicubic": 1.5, "srgan-vgg54": 3.5, "hr": 4.5},
    }
    ratings, truth = planning.simulate_study(
        true_mos, n_raters=12, n_images=6, seed=11, n_repeats=6, n_gold=6, n_random_raters=1,
        bias_sd=0.3, inconsistency=(0.4, 0.8), image_sd=0.3, return_truth=True,
    )  # fmt: skip
    return ratings, truth


@pytest.fixture(scope="session")
def paper_study():
    """A study of the paper's design (26 raters, 12/12/9 methods, 5/14/100 images) at Table 1/2's MOS."""
    ratings, truth = planning.simulate_study(
        tables.paper_true_mos(), n_raters=26, n_images=PAPER_IMAGES, seed=2017,
        bias_sd=0.3, inconsistency=(0.4, 0.8), image_sd=0.0, return_truth=True,
    )  # fmt: skip
    return ratings, truth


def make_stimuli(ratings: pd.DataFrame, seed: int = 0, noise: bool = True) -> pd.DataFrame:
    """A stimulus table for the rated (dataset, image, method): the paper's PSNR/SSIM (+ noise), hashes."""
    rng = np.random.default_rng(seed)
    keys = ratings.loc[ratings["kind"] == "test", ["dataset", "image", "method"]].drop_duplicates()
    paper = pd.concat([tables.PAPER_TABLE2, tables.PAPER_TABLE1], ignore_index=True)
    paper = paper[["dataset", "method", "psnr_y", "ssim_y"]]
    stim = keys.merge(paper, on=["dataset", "method"], how="left").sort_values(["dataset", "image", "method"])
    fallback = stim["method"].map({"nearest": 25.0, "bicubic": 26.0, "srgan-vgg54": 25.5})
    stim["psnr_y"] = stim["psnr_y"].fillna(fallback)
    stim["ssim_y"] = stim["ssim_y"].fillna(fallback / 40.0)
    if noise:
        stim["psnr_y"] += rng.normal(0.0, 0.8, len(stim))
        stim["ssim_y"] += rng.normal(0.0, 0.01, len(stim))
    hr = stim["method"] == "hr"
    stim.loc[hr, ["psnr_y", "ssim_y"]] = np.nan
    stim["lpips"] = np.where(hr, 0.0, 0.5 - 0.02 * stim["psnr_y"].fillna(0.0) + rng.normal(0, 0.01, len(stim)))
    stim["file"] = "stimuli/" + stim["dataset"] + "/" + stim["method"] + "/" + stim["image"] + ".png"
    stim["sha256"] = [hashlib.sha256(f.encode()).hexdigest() for f in stim["file"]]
    return stim.reset_index(drop=True)


@pytest.fixture(scope="session")
def small_stimuli(small_study):
    return make_stimuli(small_study[0])


def assert_unchanged(before: pd.DataFrame, after: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(before, after)


@pytest.fixture(scope="session")
def stimuli_factory():
    """``make_stimuli`` as a fixture, for tests that build stimulus tables for their own studies."""
    return make_stimuli
