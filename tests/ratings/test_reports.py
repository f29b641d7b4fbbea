"""The stored report: built by the task, served as last built, never rebuilt in a web request."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
from datetime import timedelta

import pandas as pd
import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from analysis.io import ratings_csv_frame
from analysis.simulation import simulate_study
from ratings import progress, report_tasks, reports, studies
from ratings.importing import import_ratings
from ratings.models import Rating, Session, SessionItem, Stimulus, Study

pytestmark = pytest.mark.django_db

TRUE_MOS = {"Set5": {"nearest": 1.3, "bicubic": 2.0, "srresnet-mse": 3.4, "srgan-vgg54": 3.6, "hr": 4.3}}


@pytest.fixture(autouse=True)
def few_replicates(settings):
    settings.REPORT_N_BOOT = 50  # the numbers are pinned elsewhere; here only where they are served from


@pytest.fixture
def lab(tmp_path, media_root):
    """An imported study of 8 raters, 2 of them random (so screening flags someone)."""
    ratings = simulate_study(TRUE_MOS, n_raters=8, n_images=5, seed=3, n_repeats=2, n_gold=2, n_random_raters=2)
    path = tmp_path / "lab.csv"
    ratings_csv_frame(ratings).to_csv(path, index=False)
    import_ratings(path, "lab")
    return Study.objects.get(name="lab")


def add_rating(study: Study, score: int = 3) -> Rating:
    """One more test rating by the first rater, as if it arrived after the build."""
    session = Session.objects.filter(rater__study=study).order_by("rater__label").first()
    stimulus = Stimulus.objects.filter(study=study, condition__name="bicubic").first()
    position = SessionItem.objects.filter(session=session).order_by("-position").first().position + 1
    item = SessionItem.objects.create(session=session, position=position, stimulus=stimulus, kind=SessionItem.Kind.TEST)
    return Rating.objects.create(item=item, rater=session.rater, stimulus=stimulus, score=score)


def served(client, name: str) -> bytes:
    response = client.get(f"/studies/lab/report/{name}")
    assert response.status_code == 200, response.status_code
    return b"".join(response.streaming_content)


def test_report_files_are_served_from_the_last_build_without_rebuilding(lab, admin_client):
    """Catches report_file fingerprinting and rebuilding the study on a request (the old behaviour):
    a rating arrives after the build and the served files stay the build's, byte for byte."""
    done = reports.build(lab)
    html, mos = served(admin_client, "report.html"), served(admin_client, "mos.csv")
    made = (done.folder / "report.html").stat().st_mtime_ns
    add_rating(lab)
    assert served(admin_client, "report.html") == html and served(admin_client, "mos.csv") == mos
    assert (done.folder / "report.html").stat().st_mtime_ns == made
    assert reports.last_build(lab).record == done.record  # no build was started either
    page = admin_client.get("/studies/lab/").content.decode()
    total = Rating.objects.filter(rater__study=lab).count()
    assert f"from {total - 1} of {total} ratings; 1 new since" in page
    assert re.search(r"Report built \d+.minutes? ago", page)
    assert admin_client.get("/studies/lab/report/../build.json").status_code == 404  # only the build's files
    assert admin_client.get("/studies/lab/report/../../etc/passwd").status_code == 404


def test_the_rebuild_button_builds_the_report(lab, admin_client):
    """Catches a dashboard that builds on GET, a report_file that builds when there is no report, and
    a button without CSRF protection."""
    page = admin_client.get("/studies/lab/").content.decode()
    assert "No report built yet." in page and "no analysis yet" in page and "/studies/lab/report/" not in page
    assert admin_client.get("/studies/lab/report/report.html").status_code == 404
    assert reports.last_build(lab) is None
    assert admin_client.get("/studies/lab/rebuild-report/").status_code == 405  # POST only
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(get_user_model().objects.get(username="admin"))
    assert strict.post("/studies/lab/rebuild-report/").status_code == 403 and reports.last_build(lab) is None
    response = admin_client.post("/studies/lab/rebuild-report/")
    assert response.status_code == 302 and response["Location"] == "/studies/lab/"
    done = reports.last_build(lab)
    assert done.ratings == Rating.objects.filter(rater__study=lab).count()
    assert b"lab" in served(admin_client, "report.html")
    page = admin_client.get("/studies/lab/").content.decode()
    assert "; 0 new since" in page and "/studies/lab/report/report.html" in page
    flagged = int(done.raters()["flagged"].sum())
    assert f"{flagged} flagged" in page and page.count('class="flagged"') == flagged
    # The button forces a build even though nothing changed (the researcher asked for it).
    admin_client.post("/studies/lab/rebuild-report/")
    assert reports.last_build(lab).folder != done.folder and done.folder.is_dir()  # the previous one is kept


def test_a_build_is_refused_while_one_runs_and_a_dead_builds_lock_is_taken_over(lab):
    """Catches a second build started beside a running one, and a lock a dead worker holds forever
    (by age, and by a process of this host that no longer runs)."""
    root = reports._root("lab")
    token = reports._acquire(root)
    assert token and reports.lock_holder(lab)["pid"] > 0
    with pytest.raises(reports.BuildRunning):
        reports.build(lab)
    assert report_tasks.build_report(lab.pk)["refused"].startswith("a build of 'lab'")
    assert reports.last_build(lab) is None and json.loads((root / reports.LOCK).read_text())["token"] == token
    reports._release(root, token)
    # A lock two hours old, from a host that is not this one: stale.
    since = (timezone.now() - timedelta(hours=2)).isoformat()
    (root / reports.LOCK).write_text(json.dumps({"since": since, "host": "gone.example", "pid": 1, "token": "x"}))
    assert reports.lock_holder(lab) is None
    first = reports.build(lab)
    assert first.folder.is_dir() and not (root / reports.LOCK).exists()
    # A fresh lock of a process of this host that has ended: stale too.
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (root / reports.LOCK).write_text(json.dumps({"since": timezone.now().isoformat(), "host": socket.gethostname(),
                                                 "pid": int(ended.stdout), "token": "y"}))
    assert reports.build(lab, force=True).folder != first.folder
    # A fresh lock of another host is respected.
    (root / reports.LOCK).write_text(json.dumps({"since": timezone.now().isoformat(), "host": "elsewhere.example",
                                                 "pid": 1, "token": "z"}))
    with pytest.raises(reports.BuildRunning):
        reports.build(lab, force=True)


def test_a_reader_during_a_rebuild_sees_the_old_or_the_new_complete_report(lab):
    """Catches a build written into the served folder (a reader would pair the new mos.csv with the
    old report.html, written last) or one that removes the old report before the new one is ready."""
    reports.build(lab)
    old = reports.served_file("lab", "report.html").parent
    old_pair = ((old / "report.html").read_bytes(), (old / "mos.csv").read_bytes())
    add_rating(lab, score=5)
    seen, failures, stop = [], [], threading.Event()

    def read():
        while not stop.is_set():
            try:
                html = reports.served_file("lab", "report.html")
                folder = html.parent
                seen.append(((folder / "report.html").read_bytes(), (folder / "mos.csv").read_bytes()))
            except Exception as exc:  # noqa: BLE001 - any failure to read is the failure tested for
                failures.append(repr(exc))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        new = reports.build(lab)
    finally:
        stop.set()
        reader.join()
    new_pair = ((new.folder / "report.html").read_bytes(), (new.folder / "mos.csv").read_bytes())
    assert new_pair != old_pair and not failures
    assert old_pair in seen and all(pair in (old_pair, new_pair) for pair in seen)


def test_study_status_flagged_is_the_number_the_build_flagged(lab):
    """Catches the old constant 0 and a count re-derived apart from screening's raters.csv."""
    status = progress.study_status(lab)
    assert status["raters"]["flagged"] is None and "no analysis yet" in progress.format_status(status)
    done = reports.build(lab)
    flagged = int(pd.read_csv(done.folder / "raters.csv")["flagged"].sum())
    assert flagged >= 1  # the two random raters
    status = progress.study_status(lab)
    assert status["raters"]["flagged"] == flagged and f"{flagged} flagged" in progress.format_status(status)
    assert status["analysis"]["ratings"] == Rating.objects.filter(rater__study=lab).count()


def test_a_failed_build_is_recorded_and_the_last_report_stays_served(lab, admin_client):
    """Catches a failure that leaves nothing served or is not shown to the researcher."""
    done = reports.build(lab)
    Rating.objects.filter(rater__study=lab).delete()
    SessionItem.objects.filter(session__rater__study=lab).delete()
    assert "no ratings yet" in report_tasks.build_report.delay(lab.pk, force=True).result.args[0]
    again = reports.last_build(lab)
    assert again.folder == done.folder and "no ratings yet" in again.error
    assert served(admin_client, "report.html")
    assert "The last build failed: ValueError: study" in admin_client.get("/studies/lab/").content.decode()


def test_dashboard_counts_equal_the_database_with_unfinished_sessions(rating_study, admin_client, monkeypatch):
    """Catches counts taken through one join of items and ratings (each multiplies the other), that
    skip raters who never started or belong to another page's raters, and a dashboard that needs a
    report to show its raters."""
    from ratings import dashboard

    from .test_views import to_rating

    monkeypatch.setattr(dashboard, "RATERS_PER_PAGE", 3)

    invited = studies.create_invitations(rating_study, 4)
    clients = [Client() for _ in invited]
    to_rating(clients[1], invited[1])  # in calibration no more, no rating yet
    for client, rater, n in ((clients[2], invited[2], 3), (clients[3], invited[3], 1)):
        to_rating(client, rater)
        for _ in range(n):
            page = client.get(f"/r/{rater.token}/rate/").content.decode()
            item = re.search(r'name="item" value="([^"]+)"', page).group(1)
            assert client.post(f"/r/{rater.token}/rate/", {"item": item, "score": "4"}).status_code == 302
    page = admin_client.get(f"/studies/{rating_study.name}/").content.decode()
    second = admin_client.get(f"/studies/{rating_study.name}/?page=2").content.decode()
    assert "Raters 1&ndash;3 of 4" in page and "Raters 4&ndash;4 of 4" in second
    for rater in invited:
        assert (f"<td>{rater.label}</td>" in page) != (f"<td>{rater.label}</td>" in second)  # on one page
    page += second
    for rater in invited:
        rated = Rating.objects.filter(rater=rater).count()
        items = SessionItem.objects.filter(session__rater=rater).exclude(kind=SessionItem.Kind.CALIBRATION).count()
        state = Session.objects.get(rater=rater).get_state_display()
        assert re.search(rf"<td>{rater.label}</td>.*?<td>{state}</td>\s*<td class=\"num\">{rated}</td>"
                         rf"<td class=\"num\">{items}</td>", page, re.S), rater.label
    assert {Rating.objects.filter(rater=r).count() for r in invited} >= {0, 1}
    status = progress.study_status(rating_study)
    total = Rating.objects.filter(rater__study=rating_study).count()
    assert status["ratings"] == total and f"Ratings: {total}." in page
    assert status["raters"]["started"] == Session.objects.filter(rater__study=rating_study,
                                                                 started_at__isnull=False).count() == 3
