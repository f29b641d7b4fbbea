"""Crowd flows in a real Chromium through the real URLs: a Prolific worker arrives from the URL
parameters, rates and is sent back to Prolific with the code; MTurk's preview enrols nobody; an MTurk
worker's final form posts to turkSubmitTo; a second tab resumes. The platforms' hosts are answered
locally by Playwright's routing (no network). Screenshots go to test-artifacts/browser/."""

from __future__ import annotations

import datetime as dt
from urllib.parse import parse_qs

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from ratings import expiry, sessions
from ratings.models import Rater, Rating, Session, Study

from .conftest import shot
from .test_browser import progress_number, rate_and_wait
from .test_crowd_flows import MTURK, PROLIFIC, SANDBOX, crowd_study, finish

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PROLIFIC_QUERY = "PROLIFIC_PID=5f3cWorker&STUDY_ID=S1&SESSION_ID=X9"


@pytest.fixture
def crowd(rating_study):
    """The test study on a platform: ``crowd(PROLIFIC)``."""
    return lambda table: crowd_study(rating_study, table)


def watch_policy(page) -> list[str]:
    violations = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    return violations


def start_from_link(page, live_server, study, query):
    page.goto(f"{live_server.url}/join/{study.open_enrolment_token}/?{query}")
    with page.expect_navigation():
        page.get_by_role("button", name="Start the study").click()


def consent(page):
    page.get_by_label("I have read the above and agree to take part.").check()
    page.get_by_role("button", name="Start").click()
    page.wait_for_url("**/calibrate/")


def test_a_prolific_worker_enrols_from_the_link_rates_and_is_sent_back_with_the_code(page_factory, live_server,
                                                                                      crowd):
    """Catches enrolment on the GET, the platform's ids lost on the way, and an exit without the
    worker's code (Prolific would not record the completion)."""
    prolific = crowd(PROLIFIC)
    page = page_factory()
    violations = watch_policy(page)
    landed = []
    page.route("https://app.prolific.com/**", lambda route: (landed.append(route.request.url), route.fulfill(
        status=200, content_type="text/html", body="<h1>Prolific: submission complete</h1>")))
    page.goto(f"{live_server.url}/join/{prolific.open_enrolment_token}/?{PROLIFIC_QUERY}")
    expect(page.get_by_role("button", name="Start the study")).to_be_visible()
    shot(page, "crowd-01-prolific-start")
    assert not Rater.objects.exists()  # the GET only shows the start page
    with page.expect_navigation():
        page.get_by_role("button", name="Start the study").click()
    page.wait_for_url("**/start/")
    rater = Rater.objects.get(study=prolific)
    assert rater.external_id == "prolific:5f3cworker" and rater.platform_ids == {"STUDY_ID": "S1", "SESSION_ID": "X9"}
    consent(page)
    while "/calibrate/" in page.url:
        with page.expect_navigation():
            page.get_by_role("button", name="Continue").click()
    page.wait_for_url("**/rate/")
    while "/rate/" in page.url:
        k = progress_number(page)
        expect(page.get_by_role("button", name="1 Bad")).to_be_enabled()
        rate_and_wait(page, lambda k=k: page.keyboard.press(str(k % 5 + 1)), k)
    page.wait_for_url("**/done/")
    shot(page, "crowd-03-prolific-exit")
    session = Session.objects.get(rater=rater)
    assert session.state == Session.State.COMPLETE
    assert page.locator("#completion-code").inner_text() == session.completion_code  # the fallback
    page.wait_for_url("https://app.prolific.com/**")
    assert parse_qs(landed[-1].split("?", 1)[1]) == {"cc": [session.completion_code]}
    assert Rating.objects.filter(rater=rater).count() == session.planned_scored_items
    assert violations == []


def test_the_mturk_preview_shows_the_task_and_no_enrolment_button(page_factory, live_server, crowd):
    """Catches an enrolment button (or a rater) in preview, and a sample that does not load."""
    mturk = crowd(MTURK)
    page = page_factory()
    violations = watch_policy(page)
    page.goto(f"{live_server.url}/join/{mturk.open_enrolment_token}/?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE"
              "&hitId=HIT1")
    expect(page.locator("#accept-first")).to_have_text("Accept the HIT to start.")
    page.wait_for_function("document.getElementById('sample').complete")
    assert page.evaluate("document.getElementById('sample').naturalWidth") > 0
    shot(page, "crowd-02-mturk-preview")
    assert page.get_by_role("button").count() == 0 and page.locator("form").count() == 0
    assert not Rater.objects.exists()
    assert violations == []


def test_an_mturk_workers_final_form_posts_to_turk_submit_to(page_factory, live_server, crowd):
    """Catches a form posted elsewhere than turkSubmitTo/mturk/externalSubmit, without the assignment
    id or the code, or blocked by the page's form-action policy."""
    mturk = crowd(MTURK)
    page = page_factory()
    violations = watch_policy(page)
    posted = []
    page.route(f"{SANDBOX}/**", lambda route: (posted.append((route.request.url, route.request.method,
                                                              route.request.post_data)),
                                               route.fulfill(status=200, content_type="text/html",
                                                             body="<h1>MTurk: HIT submitted</h1>")))
    start_from_link(page, live_server, mturk,
                    f"assignmentId=ASSIGN1&hitId=HIT1&workerId=A2WORKER&turkSubmitTo={SANDBOX}")
    page.wait_for_url("**/start/")
    rater = Rater.objects.get(study=mturk)
    assert rater.external_id == "mturk:a2worker"
    session = finish(rater)  # rated through the service: the Prolific test rates in the page
    page.goto(f"{live_server.url}/r/{rater.token}/")
    page.wait_for_url("**/done/")
    shot(page, "crowd-04-mturk-exit")
    page.get_by_role("button", name="Submit the HIT").click()
    page.wait_for_url(f"{SANDBOX}/mturk/externalSubmit")
    url, method, body = posted[-1]
    assert (url, method) == (f"{SANDBOX}/mturk/externalSubmit", "POST")
    assert parse_qs(body) == {"assignmentId": ["ASSIGN1"], "completion_code": [session.completion_code]}
    assert violations == []


def test_a_second_tab_of_the_same_worker_resumes(page_factory, live_server, crowd):
    """Catches a second rater (or a refusal) for the same worker's second tab."""
    prolific = crowd(PROLIFIC)
    first = page_factory()
    start_from_link(first, live_server, prolific, PROLIFIC_QUERY)
    consent(first)
    with first.expect_navigation():
        first.get_by_role("button", name="Continue").click()
    at = progress_number(first)
    second = first.context.new_page()
    start_from_link(second, live_server, prolific, PROLIFIC_QUERY)
    second.wait_for_url("**/calibrate/")
    assert progress_number(second) == at == 2 and second.url == first.url
    assert Rater.objects.filter(study=prolific).count() == 1


def test_an_expired_and_a_screened_out_worker_see_their_exits(page_factory, live_server, crowd):
    """Catches a code shown for an expired session, and the completion URL for a screened-out one."""
    prolific = crowd(PROLIFIC)
    page = page_factory()
    landed = []
    page.route("https://app.prolific.com/**", lambda route: (landed.append(route.request.url), route.fulfill(
        status=200, content_type="text/html", body="<h1>Prolific</h1>")))
    start_from_link(page, live_server, prolific, PROLIFIC_QUERY)
    consent(page)
    rater = Rater.objects.get(study=prolific)
    expiry.expire_stalled(prolific, now=timezone.now() + dt.timedelta(hours=2))
    page.reload()
    page.wait_for_url("**/done/")
    expect(page.get_by_role("heading", name="Your session has expired")).to_be_visible()
    shot(page, "crowd-05-expired")
    page.wait_for_timeout(2500)  # longer than the exit's refresh: an expired session goes nowhere
    assert landed == [] and page.locator("#completion-code").count() == 0
    Session.objects.filter(rater=rater).update(state=Session.State.SCREENED_OUT, end_reason="failed the training")
    page.reload()
    expect(page.get_by_role("heading", name="Thank you for your time")).to_be_visible()
    shot(page, "crowd-06-screened-out-exit")
    page.wait_for_url("https://app.prolific.com/**")
    assert landed[-1].endswith(f"cc=OUT{sessions.completion_code(rater, 'screened_out')}")


def test_mturk_may_frame_an_mturk_studys_page_and_nobody_frames_a_lab_page(page_factory, live_server, crowd):
    """MTurk shows an ExternalQuestion in an iframe of its own https site. Catches the site-wide
    frame-ancestors 'none' (or X-Frame-Options) left on an MTurk study's page (MTurk would show an
    empty frame), and the exception leaking to other pages. The site is reached as https://lab.example
    (forwarded to the live server), since an https page may not frame a plain-http one."""
    page = page_factory()
    page.route("https://lab.example/**", lambda route: route.fulfill(
        response=route.fetch(url=route.request.url.replace("https://lab.example", live_server.url))))
    shown = {}
    page.route("https://worker.mturk.com/**", lambda route: route.fulfill(
        status=200, content_type="text/html", body=f'<iframe id="q" src="{shown["src"]}" width="1200" height="700">'))
    mturk = crowd(MTURK)
    shown["src"] = f"https://lab.example/join/{mturk.open_enrolment_token}/?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE"
    page.goto("https://worker.mturk.com/projects/1/tasks")
    expect(page.frame_locator("#q").locator("#accept-first")).to_have_text("Accept the HIT to start.")
    shot(page, "crowd-07-mturk-preview-framed")
    config = Study.objects.get(pk=mturk.pk).config
    del config["crowd"]
    Study.objects.filter(pk=mturk.pk).update(config=config)
    shown["src"] = f"https://lab.example/join/{mturk.open_enrolment_token}/"  # now a lab study: the plain form
    page.goto("https://worker.mturk.com/projects/1/tasks")
    page.wait_for_timeout(1000)
    assert page.frame_locator("#q").get_by_text("Your worker id on the crowd platform").count() == 0
    assert page.frames[1].url.startswith("chrome-error://")  # refused to be framed
