"""The researcher's pages: the study list, a study's dashboard and its report files (staff only).

None of them analyses anything: the dashboard reads counts and the last report build, the report
files are served from that build, and the rebuild button only enqueues the build task.
"""

from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from . import dashboard, report_tasks, reports
from .models import Study

REPORT_CSP = ("default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; base-uri 'none'; "
              "form-action 'none'; frame-ancestors 'none'")


@staff_member_required
def study_list(request):
    return render(request, "ratings/dashboard_list.html", {"studies": Study.objects.all()})


@staff_member_required
def study_dashboard(request, name):
    study = get_object_or_404(Study, name=name)
    page = request.GET.get("page", "1")
    context = dashboard.summary(study, page=int(page) if page.isdigit() else 1)
    if context["build"] is not None and context["build"].folder is not None:
        context["report_url"] = reverse("ratings:report_file", kwargs={"name": name, "file": "report.html"})
    return render(request, "ratings/dashboard.html", {"study": study, **context})


@staff_member_required
@require_POST
def rebuild_report(request, name):
    """Enqueue a build of the report (on a worker with a broker; here and now without one)."""
    study = get_object_or_404(Study, name=name)
    report_tasks.enqueue_build(study)
    return redirect("ratings:dashboard", name=name)


@staff_member_required
def report_file(request, name, file):
    """A file of the study's last report build; never builds one."""
    study = get_object_or_404(Study, name=name)
    path = reports.served_file(study, file)
    if path is None:
        raise Http404("no such report file (no report built yet, or not in it)")
    response = FileResponse(path.open("rb"))
    # The standalone report carries its CSS inline and its plots as data: URIs; it runs no script.
    response["Content-Security-Policy"] = REPORT_CSP
    return response
