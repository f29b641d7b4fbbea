"""Rater pages and the researcher dashboard. Each view reads the request, calls one service and
renders; everything that changes state is in :mod:`ratings.sessions`."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from . import dashboard, sessions
from .models import Rater, Session, SessionItem, Study

STEP_URLS = {
    Session.State.CONSENT: "ratings:consent",
    Session.State.CALIBRATION: "ratings:calibrate",
    Session.State.RATING: "ratings:rate",
    Session.State.COMPLETE: "ratings:done",
}


def _rater(token: str) -> Rater:
    return get_object_or_404(Rater.objects.select_related("study", "session"), token=token)


def _refused(request, rater: Rater | None, exc: sessions.RatingRefused) -> HttpResponse:
    return render(request, "ratings/refused.html", {"message": exc.message, "rater": rater}, status=exc.status)


def _go_on(rater: Rater):
    rater.session.refresh_from_db()
    return redirect(STEP_URLS[rater.session.state], token=rater.token)


def rater_home(request, token):
    return _go_on(_rater(token))


@require_http_methods(["GET", "POST"])
def join(request, enrolment_token):
    study = get_object_or_404(Study, open_enrolment_token=enrolment_token)
    worker_id = request.POST.get("worker_id") or request.GET.get("worker_id") or ""
    if not worker_id:
        return render(request, "ratings/join.html", {"study": study})
    try:
        rater = sessions.enrol_open(study, worker_id)
    except sessions.RatingRefused as exc:
        return _refused(request, None, exc)
    return redirect("ratings:home", token=rater.token)


@require_http_methods(["GET", "POST"])
def consent(request, token):
    rater = _rater(token)
    if rater.session.state != Session.State.CONSENT:
        return _go_on(rater)
    if request.method == "POST":
        if request.POST.get("consent") != "yes":
            return render(request, "ratings/consent.html", {"rater": rater, "study": rater.study,
                                                            "error": "Please tick the box to agree before you start."}, status=400)
        try:
            dpr = float(request.POST.get("device_pixel_ratio") or 0) or None
        except ValueError:
            dpr = None
        try:
            sessions.start_session(rater, device_pixel_ratio=dpr, viewport=request.POST.get("viewport", ""),
                                   user_agent=request.headers.get("User-Agent", ""))
        except sessions.RatingRefused as exc:
            return _refused(request, rater, exc)
        return _go_on(rater)
    return render(request, "ratings/consent.html", {"rater": rater, "study": rater.study})


def _image_url(rater: Rater, item: SessionItem | None) -> str | None:
    if item is None:
        return None
    return reverse("ratings:image", kwargs={"token": rater.token, "public_id": item.stimulus.public_id})


def _next_item(item: SessionItem) -> SessionItem | None:
    return SessionItem.objects.select_related("stimulus").filter(session=item.session, position=item.position + 1).first()


@require_http_methods(["GET", "POST"])
def calibrate(request, token):
    rater = _rater(token)
    if request.method == "POST":
        try:
            sessions.advance_calibration(rater, int(request.POST.get("position", -1)))
        except (sessions.RatingRefused, ValueError) as exc:
            return _refused(request, rater, exc if isinstance(exc, sessions.RatingRefused)
                            else sessions.RatingRefused("Bad request.", 400))
        return _go_on(rater)
    if rater.session.state != Session.State.CALIBRATION:
        return _go_on(rater)
    item = sessions.current_item(rater.session)
    total = rater.session.items.filter(kind=SessionItem.Kind.CALIBRATION).count()
    return render(request, "ratings/calibrate.html", {
        "rater": rater, "item": item, "image_url": _image_url(rater, item),
        "next_url": _image_url(rater, _next_item(item)), "label": sessions.SCORE_LABELS[item.expected_score],
        "number": item.position + 1, "total": total,
    })


@require_http_methods(["GET", "POST"])
def rate(request, token):
    rater = _rater(token)
    if request.method == "POST":
        try:
            result = sessions.record_rating(rater, request.POST.get("item", ""), request.POST.get("score"),
                                            request.POST.get("response_ms"))
        except sessions.RatingRefused as exc:
            return _refused(request, rater, exc)
        if sessions.break_due(result.session):
            return redirect("ratings:break", token=rater.token)
        return _go_on(rater)
    if rater.session.state != Session.State.RATING:
        return _go_on(rater)
    session = rater.session
    item = sessions.current_item(session)
    rated_kinds = session.items.exclude(kind=SessionItem.Kind.CALIBRATION)
    total = rated_kinds.count()
    done = rated_kinds.filter(position__lt=session.position).count()
    return render(request, "ratings/rate.html", {
        "rater": rater, "item": item, "item_token": sessions.item_token(item),
        "image_url": _image_url(rater, item), "next_url": _image_url(rater, _next_item(item)),
        "number": done + 1, "total": total, "done": done, "scores": sessions.SCORE_LABELS.items(),
    })


def take_break(request, token):
    rater = _rater(token)
    return render(request, "ratings/break.html", {"rater": rater})


def done(request, token):
    rater = _rater(token)
    if rater.session.state != Session.State.COMPLETE:
        return _go_on(rater)
    return render(request, "ratings/done.html", {"rater": rater, "code": rater.session.completion_code})


def image(request, token, public_id):
    """A stimulus's pixels, only for a rater whose session contains it; the URL reveals nothing."""
    rater = _rater(token)
    item = SessionItem.objects.select_related("stimulus").filter(session__rater=rater, stimulus__public_id=public_id).first()
    if item is None or not item.stimulus.file:
        raise Http404("not in this session")
    path = Path(settings.MEDIA_ROOT) / item.stimulus.file
    response = FileResponse(path.open("rb"), content_type="image/png")
    # The same bytes for the whole study: let the browser keep the preloaded next image.
    response["Cache-Control"] = "private, max-age=86400, immutable"
    response["Content-Disposition"] = "inline"  # no file name: it would name the method
    return response


def csrf_failure(request, reason=""):
    return render(request, "ratings/refused.html", {
        "message": "This page expired or was opened in a way that cannot be verified (missing security token). "
                   "Nothing was stored. Please reload the page and answer again."}, status=403)


# -- researcher dashboard ---------------------------------------------------------------------------
@staff_member_required
def study_list(request):
    return render(request, "ratings/dashboard_list.html", {"studies": Study.objects.all()})


@staff_member_required
def study_dashboard(request, name):
    study = get_object_or_404(Study, name=name)
    return render(request, "ratings/dashboard.html", {"study": study, **dashboard.summary(study, request)})
