"""How far each stimulus of a balanced study is from its target: the one counting rule of top-up.

A stimulus's test item counts toward ``ratings_per_stimulus`` while it can still become a rating
that enters the results: it is rated in a session that was not screened out, or it waits in a live
session (not yet finished, expired or screened out). So the unrated items of an expired or
screened-out session go back into the pool, and the next worker is given them; a rating already
stored in an expired session still counts (it is a rating, and it enters the results).
"""

from __future__ import annotations

from django.db.models import Count, Q, QuerySet

from .models import Session, SessionItem, Stimulus, Study, StudyDataset

__all__ = ["counted_items", "stimuli_with_counts"]

_GONE = (Session.State.EXPIRED, Session.State.SCREENED_OUT)


def counted_items(prefix: str = "") -> Q:
    """The filter on ``SessionItem`` (through ``prefix``, e.g. ``"items__"``) of the items that count."""
    rated = Q(**{f"{prefix}rating__isnull": False}) & ~Q(**{f"{prefix}session__state": Session.State.SCREENED_OUT})
    waiting = Q(**{f"{prefix}rating__isnull": True}) & ~Q(**{f"{prefix}session__state__in": _GONE})
    return Q(**{f"{prefix}kind": SessionItem.Kind.TEST}) & (rated | waiting)


def stimuli_with_counts(study: Study) -> QuerySet:
    """The study's made test stimuli, each annotated with ``n``: its counted items."""
    done = Stimulus.objects.filter(study=study, state=Stimulus.State.DONE, image__dataset__role=StudyDataset.Role.TEST)
    return done.annotate(n=Count("items", filter=counted_items("items__"), distinct=True)).order_by("pk")
