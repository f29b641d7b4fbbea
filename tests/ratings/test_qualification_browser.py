"""A Prolific worker who fails the training, in a real Chromium through the real URLs: enrols from the
link's parameters, consents (the page reports the screen and device), sees the two examples, rates
the training images and is told the expected score after each, and, with no answer close to it, is
sent through the screened-out exit to Prolific's screened-out URL with the screened-out code.
Prolific's host is answered locally by Playwright's routing (no network). Screenshots go to
test-artifacts/browser/."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from ratings import sessions
from ratings.models import Rater, Rating, Session

from .conftest import shot
from .qualified import qualified_study

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

COMPLETED = "https://app.prolific.com/submissions/complete?cc={code}"
SCREENED_OUT = "https://app.prolific.com/submissions/screened-out?cc={code}"
CROWD = f"""
[crowd]
platform = "prolific"
completion_url = "{COMPLETED}"
screened_out_url = "{SCREENED_OUT}"
"""


def reach_training(page, live_server, study, pid: str, session_id: str) -> Rater:
    """Enrol from the Prolific link, consent and pass the examples; the page then shows training image 1."""
    page.goto(f"{live_server.url}/join/{study.open_enrolment_token}/?PROLIFIC_PID={pid}&STUDY_ID=S1"
              f"&SESSION_ID={session_id}")
    with page.expect_navigation():
        page.get_by_role("button", name="Start the study").click()
    page.wait_for_url("**/start/")
    page.get_by_label("I have read the above and agree to take part.").check()
    page.get_by_role("button", name="Start").click()
    page.wait_for_url("**/calibrate/")
    rater = Rater.objects.get(study=study, external_id__endswith=pid.casefold())
    while "/calibrate/" in page.url:
        with page.expect_navigation():
            page.get_by_role("button", name="Continue").click()
    page.wait_for_url("**/rate/")
    return rater


def test_a_prolific_worker_who_fails_the_training_leaves_by_the_screened_out_route(page_factory, live_server,
                                                                                   datasets_root, media_root):
    """Catches: training images not shown or not marked as training, the expected score not told in
    the browser, the pass rule not applied (the worker would go on to rate), and the exit sending a
    screened-out worker to the completion URL or with the finished workers' code (Prolific would pay
    them as finished)."""
    study = qualified_study(datasets_root, rating="raters = 2", crowd=CROWD)
    page = page_factory()
    landed = []
    page.route("https://app.prolific.com/**", lambda route: (landed.append(route.request.url), route.fulfill(
        status=200, content_type="text/html", body="<h1>Prolific</h1>")))
    rater = reach_training(page, live_server, study, "5f3cTrainee", "X9")
    rater.refresh_from_db()
    assert (rater.device_type, rater.screen) == ("desktop", "1366x768")  # what consent.js reported
    feedback = page.locator("#feedback")
    for k in range(1, 5):
        expect(page.locator("#progress-text")).to_have_text(f"Training image {k} of 4")
        expect(page.get_by_role("button", name="3 Fair")).to_be_enabled()
        page.keyboard.press("3")  # two points from both expected scores (1 and 5): never close
        expect(feedback).to_be_visible()
        expect(feedback).to_have_text(re.compile(r"^Expected: (1 \(Bad\)|5 \(Excellent\)); you answered 3 \(Fair\)\.$"))
        if k == 1:
            shot(page, "qualification-01-training-feedback")
    page.wait_for_url("**/done/")
    expect(page.get_by_role("heading", name="Thank you for your time")).to_be_visible()
    code = sessions.completion_code(rater, "screened_out")
    expect(page.locator("#completion-code")).to_have_text(code)
    shot(page, "qualification-02-screened-out-exit")
    page.wait_for_url(SCREENED_OUT.format(code=code))
    assert landed == [SCREENED_OUT.format(code=code)]
    session = Session.objects.get(rater=rater)
    assert session.state == Session.State.SCREENED_OUT
    assert session.end_reason == ("qualification: 0 of 4 training answers within one point of the expected score, "
                                  "3 needed")
    assert list(Rating.objects.filter(rater=rater).values_list("score", flat=True)) == [3, 3, 3, 3]
    assert code != sessions.completion_code(rater)


def test_a_prolific_worker_qualifies_rates_and_lands_on_the_completion_redirect(page_factory, live_server,
                                                                                datasets_root, media_root):
    """The whole Prolific path of issue 18 in one browser: the link's parameters, consent, the two
    examples, the four training images answered right (each told), every scored image rated (answers
    varied, so the straight-lining rule stays quiet), and the exit to the completion URL with the
    finished workers' code. Catches a pass rule that screens out a passing worker, training items
    counted among the scored ones, and an exit to the screened-out URL or with the wrong code."""
    study = qualified_study(datasets_root, rating="raters = 2", crowd=CROWD)
    page = page_factory()
    landed = []
    page.route("https://app.prolific.com/**", lambda route: (landed.append(route.request.url), route.fulfill(
        status=200, content_type="text/html", body="<h1>Prolific</h1>")))
    rater = reach_training(page, live_server, study, "5f3cPasses", "X10")
    training = list(rater.session.items.filter(kind="training").order_by("position"))
    for k, item in enumerate(training, start=1):
        expect(page.locator("#progress-text")).to_have_text(f"Training image {k} of 4")
        expect(page.get_by_role("button", name="3 Fair")).to_be_enabled()
        page.keyboard.press(str(item.expected_score))
        expect(page.locator("#feedback")).to_have_text(re.compile(r"^Expected: (1|5) .*; you answered (1|5) "))
    scored = rater.session.items.exclude(kind__in=["calibration", "training"]).count()
    for k in range(1, scored + 1):
        expect(page.locator("#progress-text")).to_have_text(f"Image {k} of {scored}")
        expect(page.get_by_role("button", name="3 Fair")).to_be_enabled()
        page.keyboard.press("2" if k % 2 else "4")
    page.wait_for_url("**/done/")
    session = Session.objects.get(rater=rater)
    assert session.state == Session.State.COMPLETE and session.end_reason == ""
    page.wait_for_url(COMPLETED.format(code=session.completion_code))
    assert landed == [COMPLETED.format(code=session.completion_code)]
    assert Rating.objects.filter(rater=rater).count() == 4 + scored
