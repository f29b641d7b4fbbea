"""Changing a test study's rating design where it is stored: ``config["rating"]`` (``Study.design``).

The design's attributes (``break_every``, ``raters_target``, ...) are read-only properties over it,
so a test sets the key the study file would (``raters`` for ``raters_target``).
"""

from __future__ import annotations

from ratings.models import Study


def set_design(study: Study, **rating) -> None:
    config = Study.objects.get(pk=study.pk).config
    config.setdefault("rating", {}).update(rating)
    Study.objects.filter(pk=study.pk).update(config=config)
    study.refresh_from_db()
