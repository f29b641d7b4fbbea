"""The state of a study in numbers: stimuli per state and method, metrics, raters and ratings.

Also, for crowd studies, where sessions and items stand: sessions not started, in progress,
complete, expired and screened out; test items assigned, rated, waiting, returned to the pool
(unrated in an expired or screened-out session) and discarded (rated in a screened-out session),
by :mod:`ratings.balance`'s rule. Every figure is an SQL aggregate (the dashboard reads this every
30 seconds, at 10^6 ratings)."""

from __future__ import annotations

from collections import defaultdict

from django.db.models import Avg, Count

from . import balance, reports
from .models import Judgment, Rating, Session, Stimulus, Study, StudyDataset

__all__ = ["format_status", "session_counts", "study_status"]

#: The session states as progress names them (consent given and not over: in progress).
SESSION_GROUPS = {Session.State.CONSENT: "not_started", Session.State.CALIBRATION: "in_progress",
                  Session.State.RATING: "in_progress", Session.State.COMPLETE: "complete",
                  Session.State.EXPIRED: "expired", Session.State.SCREENED_OUT: "screened_out"}


def session_counts(study: Study) -> dict[str, int]:
    """The study's sessions per group of :data:`SESSION_GROUPS`, in one grouped query."""
    counts = dict.fromkeys(SESSION_GROUPS.values(), 0)
    for state, n in (Session.objects.filter(rater__study=study).order_by().values_list("state")
                     .annotate(n=Count("pk")).values_list("state", "n")):
        counts[SESSION_GROUPS[state]] += n
    return counts


def study_status(study: Study, *, build: reports.Build | None = None) -> dict:
    """A JSON-ready summary of generation and rating progress. ``raters.flagged`` is the number the
    last report build's screening flagged (None: no analysis yet); ``analysis`` says when that build
    was made and from how many ratings. ``build``: the last build, when the caller has read it."""
    build = build or reports.last_build(study)
    built = build is not None and build.folder is not None
    per_method: dict[str, dict[str, int]] = defaultdict(lambda: {s: 0 for s in Stimulus.State.values})
    for row in study.stimuli.values("condition__name", "state").annotate(n=Count("id")):
        per_method[row["condition__name"]][row["state"]] = row["n"]
    metrics = []
    test_stimuli = study.stimuli.filter(image__dataset__role=StudyDataset.Role.TEST, state=Stimulus.State.DONE)
    for row in (test_stimuli.values("image__dataset__name", "image__dataset__position", "condition__name", "condition__position")
                .annotate(n=Count("id"), psnr_y=Avg("psnr_y"), ssim_y=Avg("ssim_y"), lpips=Avg("lpips"),
                          dists=Avg("dists"), niqe=Avg("niqe"))
                .order_by("image__dataset__position", "condition__position")):
        metrics.append({"dataset": row["image__dataset__name"], "method": row["condition__name"], "images": row["n"],
                        "psnr_y": row["psnr_y"], "ssim_y": row["ssim_y"], "lpips": row["lpips"],
                        "dists": row["dists"], "niqe": row["niqe"]})
    failed = list(study.stimuli.filter(state=Stimulus.State.FAILED)
                  .values_list("image__dataset__name", "image__name", "condition__name", "error")[:50])
    totals = {s: sum(m[s] for m in per_method.values()) for s in Stimulus.State.values}
    # Generation has ended but failures keep the study closed to raters (generation.refresh_study_state).
    incomplete = (study.state == Study.State.GENERATING and totals[Stimulus.State.FAILED] > 0
                  and not any(totals[s] for s in (Stimulus.State.PENDING, Stimulus.State.QUEUED, Stimulus.State.RUNNING)))
    raters = study.raters.all()
    ratings = Rating.objects.filter(rater__study=study)
    items, balanced = balance.pool_counts(study)
    return {
        "study": study.name,
        "state": study.state,
        "incomplete": incomplete,
        "seed": study.seed,
        "stimuli": {"total": sum(totals.values()), **totals},
        "stimuli_per_method": {name: dict(states) for name, states in per_method.items()},
        "metrics": metrics,
        "failed": [{"dataset": d, "image": i, "method": m, "error": e} for d, i, m, e in failed],
        "raters": {
            "total": raters.count(),
            "started": raters.filter(session__started_at__isnull=False).count(),
            "completed": raters.filter(session__completed_at__isnull=False).count(),
            "flagged": build.flagged if built else None,
        },
        "sessions": session_counts(study),
        "items": items,
        "balance": balanced,
        "ratings": ratings.count(),
        "judgments": Judgment.objects.filter(rater__study=study).count(),
        "analysis": {"built_at": build.record["built_at"], "ratings": build.ratings} if built else None,
    }


def format_status(status: dict) -> str:
    """The summary as the text tables ``run_study`` and ``study_status`` print."""
    state = "incomplete: failed stimuli, not open to raters" if status.get("incomplete") else status["state"]
    lines = [f"study {status['study']} ({state}, seed {status['seed']})"]
    s = status["stimuli"]
    lines.append(f"stimuli: {s['done']} done, {s['pending'] + s['queued'] + s['running']} to do, "
                 f"{s['failed']} failed, {s['total']} in all")
    lines.append(f"{'method':<18} {'done':>5} {'to do':>6} {'failed':>6}")
    for method, states in status["stimuli_per_method"].items():
        todo = states["pending"] + states["queued"] + states["running"]
        lines.append(f"{method:<18} {states['done']:>5} {todo:>6} {states['failed']:>6}")
    if status["metrics"]:
        lines.append("")
        lines.append(f"{'dataset':<10} {'method':<18} {'images':>6} {'PSNR-Y':>8} {'SSIM-Y':>7}")
        for m in status["metrics"]:
            psnr = f"{m['psnr_y']:8.2f}" if m["psnr_y"] is not None else f"{'-':>8}"
            ssim = f"{m['ssim_y']:7.4f}" if m["ssim_y"] is not None else f"{'-':>7}"
            lines.append(f"{m['dataset']:<10} {m['method']:<18} {m['images']:>6} {psnr} {ssim}")
    for f in status["failed"]:
        lines.append(f"FAILED {f['dataset']}/{f['image']} [{f['method']}]: {f['error']}")
    if status.get("incomplete"):
        lines.append(f"not open to raters: {s['failed']} stimuli failed. Fix them and rerun run_study with --retry, "
                     f"or open the study without them with run_study --accept-failures")
    r = status["raters"]
    lines.append("")
    flagged = "no analysis yet" if r["flagged"] is None else f"{r['flagged']} flagged"
    lines.append(f"raters: {r['total']} invited or enrolled, {r['started']} started, {r['completed']} completed, "
                 f"{flagged}; ratings: {status['ratings']}"
                 + (f", judgments: {status['judgments']}" if status.get('judgments') else ""))
    if status.get("sessions"):
        n = status["sessions"]
        lines.append(f"sessions: {n['in_progress']} in progress, {n['complete']} complete, {n['expired']} expired, "
                     f"{n['screened_out']} screened out, {n['not_started']} not started")
        i = status["items"]
        lines.append(f"items: {i['assigned']} assigned, {i['rated']} rated, {i['waiting']} waiting in live sessions, "
                     f"{i['returned']} returned to the pool (unrated when their session expired or was screened "
                     f"out), {i['discarded']} rated in screened-out sessions (kept, not counted)")
    if status.get("balance"):
        b = status["balance"]
        lines.append(f"balance: {b['at_target']} of {b['stimuli']} stimuli have their {b['target']} ratings, "
                     f"{b['short']} still short (handed to newcomers), {b['ratings_missing']} ratings missing")
    if status.get("analysis"):
        a = status["analysis"]
        lines.append(f"last analysis: built {a['built_at']} from {a['ratings']} ratings")
    return "\n".join(lines)
