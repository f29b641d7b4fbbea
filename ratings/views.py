"""Rater pages (the researcher dashboard is in :mod:`ratings.researcher_views`).

Each view parses the request with a form, calls one service and renders; everything that changes
state is in :mod:`ratings.sessions`, and so is where the rater goes next (``Step.next_page``) and what a
step sends to the browser (``Step.payload``, the page's context and the JSON answer alike)."""

from __future__ import annotations

from django.conf import settings
from django.http import FileResponse, Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from . import crowd, enrolment, framing, preview, sessions, stimulus_files
from .crowd_exits import exit_for
from .forms import CalibrationForm, ConsentForm, EnrolmentForm, PairForm, RatingForm
from .models import Rater, Study


def _rater(token: str) -> Rater:
    return get_object_or_404(Rater.objects.select_related("study", "session"), token=token)


def _render(request, study: Study, template: str, context: dict, status: int = 200, post_to: str = "") -> HttpResponse:
    """A page of ``study``: an MTurk study's pages may be framed by MTurk (:mod:`ratings.framing`)."""
    response = render(request, template, {"study": study, "platform": _platform_name(study), **context}, status=status)
    return framing.allow_platform(response, study.crowd, post_to)


def _platform_name(study: Study) -> str:
    names = {"prolific": "Prolific", "mturk": "MTurk", "generic": "the platform"}
    return names[study.crowd.platform] if study.crowd else ""


def _refused(request, rater: Rater | None, exc: sessions.RatingRefused, study: Study | None = None) -> HttpResponse:
    study = study or rater.study
    return _render(request, study, "ratings/refused.html", {"message": exc.message, "rater": rater}, status=exc.status)


def _step(rater: Rater) -> sessions.Step:
    """The rater's current step, read afresh (a service may have moved the session on), not yet shown."""
    session = rater.session
    session.refresh_from_db()
    session.rater = rater  # refresh_from_db forgets it; the step's URLs need the token
    return sessions.current_step(session, mark_shown=False)


def _go_on(rater: Rater):
    return redirect(_step(rater).url())


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
    """Open enrolment: a GET shows the form (filled in from the link's parameters), a POST enrols.

    A crowd study (``[crowd]``) reads the platform's parameters instead (:func:`crowd_join`)."""
    study = get_object_or_404(Study, open_enrolment_token=enrolment_token)
    if study.crowd is not None:
        return crowd_join(request, study)
    if request.method == "GET":
        form = EnrolmentForm(initial={"worker_id": request.GET.get("worker_id", "")})
        return render(request, "ratings/join.html", {"study": study, "form": form})
    form = EnrolmentForm(request.POST)
    if not form.is_valid():
        return render(request, "ratings/join.html", {"study": study, "form": form}, status=400)
    return _enrol(request, study, form.cleaned_data["worker_id"])


def _enrol(request, study: Study, worker_id: str, platform_ids: dict | None = None):
    cookie = enrolment.EnrolmentCookie()
    try:
        rater = enrolment.enrol(study, worker_id, address=_client_address(request),
                                returning_token=cookie.read(request, study), platform_ids=platform_ids)
    except enrolment.EnrolmentRefused as exc:
        return _render(request, study, "ratings/refused.html", {"message": exc.message, "at_door": True},
                       status=exc.status)
    response = redirect("ratings:home", token=rater.token)
    cookie.set(response, rater)
    return response


ACCEPT_FIRST = "Please accept the HIT on MTurk first; the study starts after that. Nothing was stored."


def crowd_join(request, study: Study):
    """A crowd worker's arrival: the GET shows the start page (MTurk's preview: the task and a sample)
    with one button that posts the link's parameters back; the POST enrols. A GET never enrols."""
    data = request.GET if request.method == "GET" else request.POST
    try:
        came = crowd.arrival(study.crowd, data)
    except crowd.CrowdError as exc:
        message = f"{exc.key} {exc.problem}. Nothing was stored."
        return _render(request, study, "ratings/refused.html", {"message": message, "at_door": True}, status=400)
    if came.preview:
        if request.method == "POST":
            return _render(request, study, "ratings/refused.html", {"message": ACCEPT_FIRST, "at_door": True},
                           status=400)
        return _render(request, study, "ratings/crowd_preview.html",
                       {"sample": preview.sample_stimulus(study) is not None})
    if request.method == "GET":
        fields = [(study.crowd.id_param, came.worker_id), *came.ids.items()]
        return _render(request, study, "ratings/crowd_start.html", {"worker_id": came.worker_id, "fields": fields})
    return _enrol(request, study, came.worker_id, came.ids)


def join_sample(request, enrolment_token):
    """The sample image of the arrival page (:mod:`ratings.preview`): no rater needed, nothing stored."""
    study = get_object_or_404(Study, open_enrolment_token=enrolment_token)
    path = preview.sample_file(study) if study.crowd is not None else None
    if path is None:
        raise Http404("no sample image")
    response = FileResponse(path.open("rb"), content_type="image/png")
    response["Cache-Control"] = "private, max-age=3600"
    response["Content-Disposition"] = "inline"
    return response


@require_http_methods(["GET", "POST"])
def consent(request, token):
    rater = _rater(token)
    step = _step(rater)
    if step.next_page() != "ratings:consent":
        return redirect(step.url())
    if request.method == "POST":
        form = ConsentForm(request.POST)
        if not form.is_valid() and "consent" in form.errors:
            return _render(request, rater.study, "ratings/consent.html",
                           {"rater": rater, "error": form.errors["consent"][0]}, status=400)
        try:
            sessions.start_session(rater, **form.viewing(), user_agent=request.headers.get("User-Agent", ""))
        except sessions.RatingRefused as exc:
            return _refused(request, rater, exc)
        return _go_on(rater)
    return _render(request, rater.study, "ratings/consent.html", {"rater": rater})


@require_http_methods(["GET", "POST"])
def calibrate(request, token):
    rater = _rater(token)
    if request.method == "POST":
        form = CalibrationForm(request.POST)
        try:
            if not form.is_valid():
                raise form.refusal()
            sessions.advance_calibration(rater, form.cleaned_data["position"])
        except sessions.RatingRefused as exc:
            return _refused(request, rater, exc)
        return _go_on(rater)
    step = _step(rater)
    if step.next_page() != "ratings:calibrate":
        return redirect(step.url())
    step.mark_shown()
    return _render(request, rater.study, "ratings/calibrate.html", {"rater": rater, **step.payload()})


def _wants_json(request) -> bool:
    # rater.js submits with fetch and this header; a plain form post (no JavaScript) gets pages.
    return request.headers.get("X-Rating-Client") == "fetch"


def _answer(request, result: sessions.RecordResult, page: str):
    """After an answer: the next step's payload for rater.js when it stays on ``page``, else where to go."""
    step = result.step
    if not _wants_json(request):
        return redirect(step.url())
    told = {"feedback": result.feedback} if result.feedback else {}
    if step.next_page() == page:
        return JsonResponse({"ok": True, "stored": result.stored, **told, **step.payload()})
    return JsonResponse({"ok": True, "stored": result.stored, **told, "redirect": step.url()})


def _answer_refused(request, rater: Rater, exc: sessions.RatingRefused):
    if _wants_json(request):
        return JsonResponse({"ok": False, "message": exc.message, "continue": rater.get_absolute_url()},
                            status=exc.status)
    return _refused(request, rater, exc)


@require_http_methods(["GET", "POST"])
def rate(request, token):
    rater = _rater(token)
    if request.method == "POST":
        form = RatingForm(request.POST)
        try:
            if not form.is_valid():
                raise form.refusal()
            result = sessions.record_rating(rater, form.cleaned_data["item"], form.cleaned_data["score"],
                                            form.cleaned_data["response_ms"])
        except sessions.RatingRefused as exc:
            return _answer_refused(request, rater, exc)
        return _answer(request, result, "ratings:rate")
    step = _step(rater)
    if step.next_page() != "ratings:rate":
        return redirect(step.url())
    try:
        sessions.ensure_open(rater.study_id)  # no rating form for a study that takes no ratings
    except sessions.RatingRefused as exc:
        return _refused(request, None, exc, rater.study)  # no Continue link: there is nowhere to go
    step.mark_shown()
    return _render(request, rater.study, "ratings/rate.html",
                   {"rater": rater, "scores": sessions.SCORE_LABELS.items(), **step.payload()})


@require_http_methods(["GET", "POST"])
def pair(request, token):
    """A pair to judge (paired studies); the answer is a side, stored once (``sessions.record_judgment``)."""
    rater = _rater(token)
    if request.method == "POST":
        form = PairForm(request.POST)
        try:
            if not form.is_valid():
                raise form.refusal()
            result = sessions.record_judgment(rater, form.cleaned_data["item"], form.answer(),
                                              form.cleaned_data["response_ms"])
        except sessions.RatingRefused as exc:
            return _answer_refused(request, rater, exc)
        return _answer(request, result, "ratings:pair")
    step = _step(rater)
    if step.next_page() != "ratings:pair":
        return redirect(step.url())
    try:
        sessions.ensure_open(rater.study_id)
    except sessions.RatingRefused as exc:
        return _refused(request, None, exc, rater.study)
    step.mark_shown()
    return _render(request, rater.study, "ratings/pair.html", {"rater": rater, **step.payload()})


def take_break(request, token):
    rater = _rater(token)
    return _render(request, rater.study, "ratings/break.html", {"rater": rater})


def done(request, token):
    """The exit of a session that is over (:func:`ratings.crowd_exits.exit_for`): a lab study's code; a
    crowd study's way back to the platform; an expired session's explanation, with no code."""
    rater = _rater(token)
    step = _step(rater)
    if step.next_page() != "ratings:done":
        return redirect(step.url())
    way_out = exit_for(rater)
    if way_out.kind == "complete" and rater.study.crowd is None:
        return render(request, "ratings/done.html", {"rater": rater, "code": rater.session.completion_code})
    template = "ratings/expired.html" if way_out.kind == "expired" else "ratings/exit.html"
    post_to = way_out.completion.url if way_out.completion and way_out.completion.method == "post" else ""
    return _render(request, rater.study, template, {"rater": rater, "exit": way_out}, post_to=post_to)


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
