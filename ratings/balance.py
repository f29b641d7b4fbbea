"""How far each stimulus of a balanced study is from its target: the one counting rule of top-up.

A stimulus's test item counts toward ``ratings_per_stimulus`` while it can still become a rating
that enters the results: it is rated in a session that was not screened out, or it waits in a live
session (not yet finished, expired or screened out). So the unrated items of an expired or
screened-out session go back into the pool, and the next worker is given them; a rating already
stored in an expired session still counts (it is a rating, and it enters the results).

What a newcomer is given (:func:`stimuli_with_counts`, read by ``session_order``): only stimuli
still *short* of the target by this count, the least counted first, at most ``items_per_rater``.
When fewer than ``items_per_rater`` are short the session is shorter; when none is short (the rest
waits in live sessions) the newcomer is given no test item at all. We chose this over filling the
session with the least-counted full stimuli (every HIT the same work) because only this keeps a
hard bound: a stimulus is assigned only while its count is below the target, a counted item
stops counting only by expiry or screening (never the other way: an expired or screened-out
session takes no answer), so no stimulus is ever counted above ``ratings_per_stimulus`` and none
ends over-collected at all, whatever the timing of quits and arrivals. Filling instead adds a
rating to full stimuli for every arrival while the last short stimuli wait in a slow session, so
its over-collection grows with the arrivals, not with the workers in flight. The price is that the
last sessions of a study are shorter than ``items_per_rater`` (a crowd platform pays per HIT, so
those workers are paid the same for less), and that an arrival while every short stimulus is held
by a live session finds nothing to rate until a stalled one expires.

Every count here is one aggregate query; nothing loops over ratings in Python.
"""

from __future__ import annotations

from django.db.models import Count, F, Q, QuerySet, Sum, Value
from django.db.models.functions import Least

from .models import Session, SessionItem, Stimulus, Study, StudyDataset

__all__ = ["counted_items", "item_counts", "open_places", "pool_counts", "stimulus_counts", "stimuli_with_counts",
           "target_counts"]

_GONE = Session.GONE_STATES


def counted_items(prefix: str = "") -> Q:
    """The filter on ``SessionItem`` (through ``prefix``, e.g. ``"items__"``) of the items that count."""
    rated = Q(**{f"{prefix}rating__isnull": False}) & ~Q(**{f"{prefix}session__state": Session.State.SCREENED_OUT})
    waiting = Q(**{f"{prefix}rating__isnull": True}) & ~Q(**{f"{prefix}session__state__in": _GONE})
    return Q(**{f"{prefix}kind": SessionItem.Kind.TEST}) & (rated | waiting)


def stimulus_counts(study: Study) -> QuerySet:
    """Every made test stimulus of the study, each annotated with ``n``: its counted items."""
    done = Stimulus.objects.filter(study=study, state=Stimulus.State.DONE, image__dataset__role=StudyDataset.Role.TEST)
    return done.annotate(n=Count("items", filter=counted_items("items__"), distinct=True)).order_by("pk")


def stimuli_with_counts(study: Study) -> QuerySet:
    """The stimuli a new balanced session may be given: those still short of ``ratings_per_stimulus``
    by the counting rule, each annotated with ``n`` (the caller ranks them, least counted first, and
    takes ``items_per_rater``; it holds the study lock while counting)."""
    return stimulus_counts(study).filter(n__lt=study.ratings_per_stimulus)


def open_places(study: Study) -> int:
    """How many more counted items a balanced study can hand out: the sum over short stimuli of
    ``ratings_per_stimulus - n``; one aggregate, cheap enough to run under the study lock at every
    enrolment (where :func:`pool_counts` is the dashboard's fuller account)."""
    places = stimuli_with_counts(study).aggregate(open=Sum(Value(study.ratings_per_stimulus) - F("n")))["open"]
    return int(places or 0)


def pool_counts(study: Study) -> tuple[dict[str, int], dict[str, int] | None]:
    """Where the study's test items (pairs, in a paired study) stand, and for a balanced 1-5 study
    where its stimuli stand against ``ratings_per_stimulus``: one statement (items grouped by
    stimulus, the groups aggregated in SQL), so the dashboard stays one scan at 10^6 ratings.

    Items: ``assigned`` (all), ``rated``, ``waiting`` (unrated in a live session), ``returned``
    (unrated in an expired or screened-out session: back in the pool), ``discarded`` (rated in a
    screened-out session: kept, flagged, not counted) and ``counted`` (the rule above). Balance
    (None for other designs): ``stimuli``, ``target``, ``at_target`` (stored ratings outside
    screened-out sessions at least the target), ``short`` (counted below the target: a newcomer is
    given these) and ``ratings_missing`` (ratings still to collect).
    """
    kind, answer = ((SessionItem.Kind.PAIR, "judgment") if study.is_paired else (SessionItem.Kind.TEST, "rating"))
    rated = Q(**{f"{answer}__isnull": False})
    gone = Q(session__state__in=_GONE)
    screened = Q(session__state=Session.State.SCREENED_OUT)
    per_stimulus = SessionItem.objects.filter(session__rater__study=study, kind=kind).order_by().values(
        "stimulus_id").annotate(a=Count("pk"), rt=Count("pk", filter=rated), w=Count("pk", filter=~rated & ~gone),
                                ret=Count("pk", filter=~rated & gone), d=Count("pk", filter=rated & screened),
                                kept=Count("pk", filter=rated & ~screened), c=Count("pk", filter=counted_items()))
    sums = {"assigned": Sum("a"), "rated": Sum("rt"), "waiting": Sum("w"), "returned": Sum("ret"),
            "discarded": Sum("d")}
    balanced = not study.is_paired and study.assignment == Study.Assignment.BALANCED
    target = study.ratings_per_stimulus if balanced else 0
    if balanced:
        sums.update(groups=Count("stimulus_id"), at_target=Count("stimulus_id", filter=Q(kept__gte=target)),
                    short=Count("stimulus_id", filter=Q(c__lt=target)), capped=Sum(Least("kept", Value(target))))
    totals = {k: v or 0 for k, v in per_stimulus.aggregate(**sums).items()}
    items = {k: totals[k] for k in ("assigned", "rated", "waiting", "returned", "discarded")}
    items["counted"] = items["assigned"] - items["returned"] - items["discarded"]
    if not balanced:
        return items, None
    stimuli = Stimulus.objects.filter(study=study, state=Stimulus.State.DONE,
                                      image__dataset__role=StudyDataset.Role.TEST).count()
    unassigned = stimuli - totals["groups"]  # short, with nothing rated
    return items, {"stimuli": stimuli, "target": target, "at_target": totals["at_target"],
                   "short": totals["short"] + unassigned, "ratings_missing": stimuli * target - totals["capped"]}


def item_counts(study: Study) -> dict[str, int]:
    """The items part of :func:`pool_counts`."""
    return pool_counts(study)[0]


def target_counts(study: Study) -> dict[str, int] | None:
    """The balance part of :func:`pool_counts` (None: not a balanced 1-5 study)."""
    return pool_counts(study)[1]
