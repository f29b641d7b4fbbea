"""End to end in a real Chromium (Playwright driving /usr/bin/chromium): a rater joins, calibrates,
rates a whole study by keyboard and by mouse, reloads in the middle, finishes; a stale page; viewing
conditions. Screenshots go to test-artifacts/browser/."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from ratings import studies
from ratings.models import Rating, Session, SessionItem

from .conftest import shot
from .designs import set_design

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

@pytest.fixture
def study(rating_study):
    return rating_study


def progress_number(page) -> int:
    text = page.locator("header.bar span").inner_text()
    return int(re.match(r"(?:Image|Example) (\d+) of", text).group(1))


def rate_and_wait(page, action, number_before):
    """Submit a score (by ``action``) and wait until the next image is shown or the page changes."""
    action()
    page.wait_for_function(
        """(before) => {
            const t = document.getElementById("progress-text");
            return !t || !location.pathname.endsWith("/rate/") || !t.textContent.startsWith("Image " + before + " ");
        }""",
        arg=number_before,
    )
    page.wait_for_load_state()
    # The next image's buttons stay off until it is on screen (a key pressed before is ignored, by
    # design): wait for them, or the next key can be lost and its test time out on a loaded box.
    page.wait_for_function(
        """() => !location.pathname.endsWith("/rate/") || !document.getElementById("rating-form")
                 || !document.querySelector("#rating-form button:disabled")"""
    )


def start(page, live_server, rater):
    page.goto(f"{live_server.url}/r/{rater.token}/")
    assert page.get_by_role("heading", name="Rating image quality").is_visible()
    page.get_by_label("I have read the above and agree to take part.").check()
    page.get_by_role("button", name="Start").click()
    page.wait_for_url("**/calibrate/")


def test_a_rater_joins_calibrates_rates_everything_reloads_and_finishes(page_factory, live_server, study):
    rater = studies.create_invitations(study, 1)[0]
    page = page_factory()
    start(page, live_server, rater)
    shot(page, "01-calibration")
    told = page.locator(".told").inner_text()
    assert "1 Bad" in told
    calibration = SessionItem.objects.filter(session__rater=rater, kind="calibration").count()
    for k in range(calibration):
        assert progress_number(page) == k + 1
        with page.expect_navigation():
            page.get_by_role("button", name="Continue").click()
    page.wait_for_url("**/rate/")
    shot(page, "02-first-rating")
    total = SessionItem.objects.filter(session__rater=rater).exclude(kind="calibration").count()
    sent = []
    for k in range(total):
        assert progress_number(page) == k + 1
        score = k % 5 + 1
        if k == total // 2:
            page.reload()  # resume at the same place
            assert progress_number(page) == k + 1
            shot(page, "03-after-reload")
        expect(page.get_by_role("button", name="1 Bad")).to_be_enabled()
        if k % 2 == 0:
            rate_and_wait(page, lambda s=score: page.keyboard.press(str(s)), k + 1)
        else:
            rate_and_wait(page, lambda s=score: page.get_by_role("button", name=re.compile(rf"^{s} ")).click(), k + 1)
        sent.append(score)
    page.wait_for_url("**/done/")
    shot(page, "04-done")
    session = Session.objects.get(rater=rater)
    assert session.state == Session.State.COMPLETE
    assert page.locator("#completion-code").inner_text() == session.completion_code
    stored = list(Rating.objects.filter(rater=rater).order_by("item__position").values_list("score", flat=True))
    assert stored == sent
    assert all(ms is not None and ms >= 0 for ms in Rating.objects.filter(rater=rater).values_list("response_ms", flat=True))


def test_a_stale_page_submitting_after_the_session_moved_on(page_factory, live_server, study):
    rater = studies.create_invitations(study, 1)[0]
    first = page_factory()
    start(first, live_server, rater)
    while "/calibrate/" in first.url:
        with first.expect_navigation():
            first.get_by_role("button", name="Continue").click()
    second = first.context.new_page()  # another tab, same item
    second.goto(first.url)
    assert progress_number(second) == progress_number(first) == 1
    expect(first.get_by_role("button", name="4 Good")).to_be_enabled()
    rate_and_wait(first, lambda: first.get_by_role("button", name="4 Good").click(), 1)
    assert progress_number(first) == 2
    expect(second.get_by_role("button", name="2 Poor")).to_be_enabled()
    second.get_by_role("button", name="2 Poor").click()
    second.locator("#refusal").wait_for()
    shot(second, "05-stale-page")
    assert "first answer was kept" in second.locator("#refusal").inner_text()
    assert list(Rating.objects.filter(rater=rater).values_list("score", flat=True)) == [4]
    second.get_by_role("link", name="Continue").click()
    second.wait_for_url("**/rate/")
    assert progress_number(second) == 2  # back on track, at the image the session waits for


def test_zoomed_browser_is_asked_to_fix_it_and_cannot_rate(page_factory, live_server, study):
    rater = studies.create_invitations(study, 1)[0]
    page = page_factory(scale=1.25)
    start(page, live_server, rater)
    problem = page.locator("#viewing-problem")
    problem.wait_for(state="visible")
    shot(page, "06-zoom-warning")
    assert "125%" in problem.inner_text() and "Ctrl+0" in problem.inner_text()
    assert page.get_by_role("button", name="Continue").is_disabled()


def test_too_small_a_window_is_reported(page_factory, live_server, study):
    rater = studies.create_invitations(study, 1)[0]
    page = page_factory(width=240, height=240)  # smaller than every Set5 image
    start(page, live_server, rater)
    while "/calibrate/" in page.url:  # calibration images fit? move on via the server, as the button may be off
        session = Session.objects.get(rater=rater)
        from ratings import sessions

        sessions.advance_calibration(rater, session.position)
        page.goto(f"{live_server.url}/r/{rater.token}/")
    problem = page.locator("#viewing-problem")
    problem.wait_for(state="visible")
    shot(page, "07-window-too-small")
    assert "too small" in problem.inner_text()
    page.keyboard.press("3")
    page.wait_for_timeout(300)
    assert Rating.objects.filter(rater=rater).count() == 0
    assert page.get_by_role("button", name="3 Fair").is_disabled()


def test_keyboard_focus_order_reaches_the_buttons_in_order(page_factory, live_server, study):
    rater = studies.create_invitations(study, 1)[0]
    page = page_factory()
    start(page, live_server, rater)
    while "/calibrate/" in page.url:
        with page.expect_navigation():
            page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("button", name="1 Bad")).to_be_enabled()
    names = []
    for _ in range(5):
        page.keyboard.press("Tab")
        names.append(page.evaluate("document.activeElement.textContent.trim()"))
    assert names == ["1 Bad", "2 Poor", "3 Fair", "4 Good", "5 Excellent"]


# Safari before 15.4 has no SubmitEvent.submitter: the submit handler is not told which button was used.
NO_SUBMITTER = "delete SubmitEvent.prototype.submitter;"

SUBMIT_WITHOUT_SUBMITTER = """(value) => {
    const form = document.getElementById("rating-form");
    const button = form.querySelector(`button[value="${value}"]`);
    const hold = (e) => e.preventDefault();  // the click alone must not submit
    document.addEventListener("click", hold);
    button.click();
    document.removeEventListener("click", hold);
    form.dispatchEvent(new SubmitEvent("submit", {bubbles: true, cancelable: true}));
}"""


def test_scores_are_sent_in_browsers_without_event_submitter(page_factory, live_server, study):
    rater = studies.create_invitations(study, 1)[0]
    page = page_factory()
    page.add_init_script(NO_SUBMITTER)
    start(page, live_server, rater)
    assert page.evaluate("'submitter' in SubmitEvent.prototype") is False
    while "/calibrate/" in page.url:
        with page.expect_navigation():
            page.get_by_role("button", name="Continue").click()
    page.wait_for_url("**/rate/")
    expect(page.get_by_role("button", name="1 Bad")).to_be_enabled()
    page.wait_for_timeout(1200)
    # A submit event without submitter after a click on "2 Poor", by script.
    rate_and_wait(page, lambda: page.evaluate(SUBMIT_WITHOUT_SUBMITTER, "2"), 1)
    expect(page.get_by_role("button", name="1 Bad")).to_be_enabled()
    page.wait_for_timeout(300)
    rate_and_wait(page, lambda: page.get_by_role("button", name="5 Excellent").click(), 2)  # mouse
    expect(page.get_by_role("button", name="1 Bad")).to_be_enabled()
    rate_and_wait(page, lambda: page.keyboard.press("3"), 3)  # the keys click the button
    ratings = list(Rating.objects.filter(rater=rater).order_by("item__position").values_list("score", "response_ms"))
    assert [score for score, _ in ratings] == [2, 5, 3]
    # Each response time counts from when its own image appeared (the second one is not 1.5 s).
    assert ratings[0][1] >= 1200 and 300 <= ratings[1][1] < 1200


def test_a_crowd_worker_joins_by_the_form_and_only_their_browser_gets_back_in(page_factory, live_server, study):
    """Open enrolment in Chromium: the link fills the form, the POST enrols and sets the browser's
    cookie, the same browser returns to its link, another browser with the same id gets nothing;
    no page breaks the Content-Security-Policy (the consent page's script is a file)."""
    from ratings.models import Rater

    set_design(study, raters=2)
    page = page_factory()
    violations = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(f"{live_server.url}/join/{study.open_enrolment_token}/?worker_id=Worker-77")
    assert not Rater.objects.filter(study=study).exists()  # the GET only shows the form
    expect(page.get_by_label("Your worker id on the crowd platform")).to_have_value("Worker-77")
    with page.expect_navigation():
        page.get_by_role("button", name="Continue").click()
    page.wait_for_url("**/start/")
    rater = Rater.objects.get(study=study, external_id="worker-77")
    assert rater.token in page.url
    page.get_by_label("I have read the above and agree to take part.").check()
    page.get_by_role("button", name="Start").click()
    page.wait_for_url("**/calibrate/")
    rater.refresh_from_db()
    assert rater.device_pixel_ratio == 1.0 and rater.viewport == "1366x768"  # set by consent.js
    page.goto(f"{live_server.url}/join/{study.open_enrolment_token}/?worker_id=WORKER-77")
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url("**/calibrate/")  # back to their own session
    other = page_factory()
    other.goto(f"{live_server.url}/join/{study.open_enrolment_token}/?worker_id=worker-77")
    other.get_by_role("button", name="Continue").click()
    other.wait_for_load_state()
    shot(other, "08-enrolment-refused")
    assert "another browser" in other.content() and rater.token not in other.content() + other.url
    assert violations == []
