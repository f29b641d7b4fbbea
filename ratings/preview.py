"""The sample image of a study's arrival page (MTurk's preview), served to nobody in particular.

Before accepting a HIT a worker sees the task and a sample, and no rater exists yet, so the sample
cannot come through a rater's assignment (:mod:`ratings.stimulus_files`). It is the original (HR) of
the study's first calibration image: calibration images are every worker's first steps, score told,
and never rated in the study, so they reveal nothing of the methods. It is found by the study's
enrolment token, the same secret as the link itself, and its file is checked against its SHA-256.
"""

from __future__ import annotations

from pathlib import Path

from sr_models.inference import sha256_file

from .models import Stimulus, Study, StudyDataset
from .stimulus_files import UnsafeMediaPath, media_file
from .study_file import REFERENCE_METHOD

__all__ = ["sample_file", "sample_stimulus"]


def sample_stimulus(study: Study) -> Stimulus | None:
    """The study's sample (None: no calibration original is made yet)."""
    return (Stimulus.objects.filter(study=study, state=Stimulus.State.DONE, condition__name=REFERENCE_METHOD,
                                    image__dataset__role=StudyDataset.Role.CALIBRATION)
            .exclude(file="").order_by("image__name", "pk").first())


def sample_file(study: Study) -> Path | None:
    """The sample's file, when it is on disk unchanged."""
    stimulus = sample_stimulus(study)
    if stimulus is None:
        return None
    try:
        path = media_file(stimulus.file)
        return path if sha256_file(path) == stimulus.sha256 else None
    except (OSError, UnsafeMediaPath):
        return None
