"""The researcher's pages: the study list, a study's dashboard and its report files (staff only)."""

from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, render
from django.urls import reverse

from . import dashboard, reports
from .models import Study

REPORT_CSP = ("default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; base-uri 'none'; "
              "form-action 'none'; frame-ancestors 'none'")


@staff_member_required
def study_list(request):
    return render(request, "ratings/dashboard_list.html", {"studies": Study.objects.all()})


@staff_member_required
def study_dashboard(request, name):
    study = get_object_or_404(Study, name=name)
    context = dashboard.summary(study, request)
    if context["status"]["ratings"]:
        context["report_url"] = reverse("ratings:report_file", kwargs={"name": name, "file": "report.html"})
    return render(request, "ratings/dashboard.html", {"study": study, **context})


@staff_member_required
def report_file(request, name, file):
    """The study's report (made or refreshed on demand) and the files it links to."""
    study = get_object_or_404(Study, name=name)
    try:
        folder = reports.dashboard_report(study)
    except ValueError as exc:
        raise Http404(str(exc)) from None
    path = (folder / file).resolve()
    if folder.resolve() not in path.parents or not path.is_file():
        raise Http404("no such report file")
    response = FileResponse(path.open("rb"))
    # The standalone report carries its CSS inline and its plots as data: URIs; it runs no script.
    response["Content-Security-Policy"] = REPORT_CSP
    return response
