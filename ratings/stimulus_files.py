"""Which stimulus file a rater may load: resolved without touching the database once warm.

Stimulus files and rater tokens never change once made, so each worker process keeps small caches
of ``public id -> (study, file)`` and ``token -> study``; serving an image then costs no query,
which matters because every rating is followed by one image download. Misses are not cached (a
stimulus may be made, a rater invited, later).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from django.conf import settings

from .models import Rater, Stimulus

__all__ = ["stimulus_file_for"]


@lru_cache(maxsize=100_000)
def _rater_study(token: str) -> int:
    study_id = Rater.objects.filter(token=token).values_list("study_id", flat=True).first()
    if study_id is None:
        raise LookupError(token)
    return study_id


@lru_cache(maxsize=100_000)
def _stimulus(public_id: str) -> tuple[int, str]:
    row = (Stimulus.objects.filter(public_id=public_id, state=Stimulus.State.DONE)
           .exclude(file="").values_list("study_id", "file").first())
    if row is None:
        raise LookupError(public_id)
    return row


def stimulus_file_for(token: str, public_id: str) -> Path | None:
    """The file of stimulus ``public_id`` if the rater with ``token`` belongs to its study."""
    try:
        study_id = _rater_study(token)
        stimulus_study, file = _stimulus(public_id)
    except LookupError:
        return None
    if stimulus_study != study_id:
        return None
    return Path(settings.MEDIA_ROOT) / file
