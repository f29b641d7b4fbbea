"""Rater pages (the researcher dashboard is in :mod:`ratings.researcher_views`). Each view reads the request, calls one service and
renders; everything that changes state is in :mod:`ratings.sessions`."""

from __future__ import annotations

from django.conf import settings
from django.http import FileResponse, Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from . import enrolment, sessions, stimulus_files
from .forms import ConsentForm, EnrolmentForm
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


def _client_address(request) -> str:
    """The client's address; behind the trusted HTTPS proxy, the one it appended to X-Forwarded-For."""
    forwarded = request.headers.get("X-Forwarded-For", "")
    if settings.SR_BEHIND_HTTPS_PROXY and forwarded:
        return forwarded.split(",")[-1].strip()
    return request.META.get("REMOTE_ADDR", "")


@require_http_methods(["GET", "POST"])
def join(request, enrolment_token):
    """Open enrolment: a GET shows the form (filled in from the link's parameters), a POST enrols."""
    study = get_object_or_404(Study, open_enrolment_token=enrolment_token)
    if request.method == "GET":
        form = EnrolmentForm(initial={"worker_id": request.GET.get("worker_id", "")})
        return render(request, "ratings/join.html", {"study": study, "form": form})
    form = EnrolmentForm(request.POST)
    if not form.is_valid():
        return render(request, "ratings/join.html", {"study": study, "form": form}, status=400)
    cookie = enrolment.EnrolmentCookie()
    try:
        rater = enrolment.enrol(study, form.cleaned_data["worker_id"], address=_client_address(request),
                                returning_token=cookie.read(request, study))
    except enrolment.EnrolmentRefused as exc:
        return render(request, "ratings/refused.html", {"message": exc.message}, status=exc.status)
    response = redirect("ratings:home", token=rater.token)
    cookie.set(response, rater)
    return response


@require_http_methods(["GET", "POST"])
def consent(request, token):
    rater = _rater(token)
    if rater.session.state != Session.State.CONSENT:
        return _go_on(rater)
    if request.method == "POST":
        form = ConsentForm(request.POST)
        if not form.is_valid() and "consent" in form.errors:
            return render(request, "ratings/consent.html", {"rater": rater, "study": rater.study,
                                                            "error": form.errors["consent"][0]}, status=400)
        try:
            sessions.start_session(rater, **form.viewing(), user_agent=request.headers.get("User-Agent", ""))
        except sessions.RatingRefused as exc:
            return _refused(request, rater, exc)
        return _go_on(rater)
    return render(request, "ratings/consent.html", {"rater": rater, "study": rater.study})


def _image_url(rater: Rater, item: SessionItem | None) -> str | None:
    if item is None:
        return None
    return reverse("ratings:image", kwargs={"token": rater.token, "public_id": item.stimulus.public_id})


def _step_context(rater: Rater, step: sessions.Step) -> dict:
    return {"rater": rater, "item": step.item, "image_url": _image_url(rater, step.item),
            "next_url": _image_url(rater, step.following), "number": step.number, "total": step.total,
            "done": step.done}


@require_http_methods(["GET", "POST"])
def calibrate(request, token):
    rater = _rater(token)
    if request.method == "POST":
        try:
            sessions.advance_calibration(rater, int(request.POST.get("position", -1)))
        except ValueError:
            return _refused(request, rater, sessions.RatingRefused("Bad request.", 400))
        except sessions.RatingRefused as exc:
            return _refused(request, rater, exc)
        return _go_on(rater)
    if rater.session.state != Session.State.CALIBRATION:
        return _go_on(rater)
    step = sessions.current_step(rater.session)
    return render(request, "ratings/calibrate.html", {
        **_step_context(rater, step), "label": sessions.SCORE_LABELS[step.item.expected_score]})


def _wants_json(request) -> bool:
    # rater.js submits with fetch and this header; a plain form post (no JavaScript) gets pages.
    return request.headers.get("X-Rating-Client") == "fetch"


def _next_payload(rater: Rater, result: sessions.RecordResult) -> dict:
    """What rater.js needs to show the next image without loading a page, or where to go."""
    session = result.session
    on_break = sessions.break_due(session)
    if session.state != Session.State.RATING or on_break:
        target = "ratings:break" if on_break else STEP_URLS[session.state]
        return {"redirect": reverse(target, kwargs={"token": rater.token})}
    step = result.step or sessions.current_step(session, mark_shown=False)
    return {"item": sessions.step_token(step), "image_url": _image_url(rater, step.item),
            "next_url": _image_url(rater, step.following), "number": step.number, "total": step.total,
            "done": step.done}


@require_http_methods(["GET", "POST"])
def rate(request, token):
    rater = _rater(token)
    if request.method == "POST":
        try:
            result = sessions.record_rating(rater, request.POST.get("item", ""), request.POST.get("score"),
                                            request.POST.get("response_ms"))
        except sessions.RatingRefused as exc:
            if _wants_json(request):
                return JsonResponse({"ok": False, "message": exc.message,
                                     "continue": reverse("ratings:home", kwargs={"token": rater.token})},
                                    status=exc.status)
            return _refused(request, rater, exc)
        if _wants_json(request):
            return JsonResponse({"ok": True, "stored": result.stored, **_next_payload(rater, result)})
        if sessions.break_due(result.session):
            return redirect("ratings:break", token=rater.token)
        return _go_on(rater)
    if rater.session.state != Session.State.RATING:
        return _go_on(rater)
    try:
        sessions.ensure_open(rater.study_id)  # no rating form for a study that takes no ratings
    except sessions.RatingRefused as exc:
        return _refused(request, None, exc)  # no Continue link: there is nowhere to go
    step = sessions.current_step(rater.session)
    return render(request, "ratings/rate.html", {
        **_step_context(rater, step), "item_token": sessions.step_token(step), "scores": sessions.SCORE_LABELS.items(),
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
    """A stimulus's pixels, for raters of its study only; the URL and headers reveal nothing."""
    path = stimulus_files.stimulus_file_for(token, public_id)
    if path is None:
        raise Http404("no such image for this rater")
    response = FileResponse(path.open("rb"), content_type="image/png")
    # The same bytes for the whole study: let the browser keep the preloaded next image.
    response["Cache-Control"] = "private, max-age=86400, immutable"
    response["Content-Disposition"] = "inline"  # no file name: it would name the method
    return response


def csrf_failure(request, reason=""):
    return render(request, "ratings/refused.html", {
        "message": "This page expired or was opened in a way that cannot be verified (missing security token). "
                   "Nothing was stored. Please reload the page and answer again."}, status=403)
