"""A crowd worker who stalls, in a real Chromium through the real pages: their session expires, the
next worker is given their unrated images and rates them, and the stalled worker coming back sees
the expired exit and can rate nothing. No sleeping for minutes: the stalled session's last activity
is moved back in the database, as stall_minutes of silence would leave it."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from ratings.models import Rater, Rating, Session, SessionItem

from .conftest import shot
from .crowd_study import STALL, make_crowd_study, rate_current
from .designs import set_design
from .test_browser import rate_and_wait

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def one_pass_study(datasets_root, media_root):
    """The crowd study with one rating per stimulus and all 15 stimuli in one session: whatever the
    first worker leaves unrated can only go to the next one."""
    study = make_crowd_study(datasets_root)
    set_design(study, ratings_per_stimulus=1, items_per_rater=15)
    return study


def arrive(page, live_server, study, worker_id) -> Rater:
    """The study link as the platform opens it, the start button, consent: on the rating page."""
    page.goto(f"{live_server.url}/join/{study.open_enrolment_token}/?worker_id={worker_id}")
    with page.expect_navigation():
        page.get_by_role("button", name=re.compile("start", re.I)).first.click()
    page.get_by_label(re.compile("agree to take part", re.I)).check()
    with page.expect_navigation():
        page.get_by_role("button", name=re.compile("^start", re.I)).click()
    page.wait_for_url("**/rate/")
    return Rater.objects.get(study=study, external_id__endswith=worker_id.lower())


def rate_in_page(page, count):
    for k in range(count):
        rate_and_wait(page, lambda: page.keyboard.press("3"), page_number(page))


def page_number(page) -> int:
    return int(re.search(r"(\d+) of", page.locator("header.bar span").inner_text()).group(1))


def unrated(rater) -> set[int]:
    return set(SessionItem.objects.filter(session__rater=rater, kind="test", rating__isnull=True)
               .values_list("stimulus_id", flat=True))


def test_a_stalled_workers_images_go_to_the_next_worker_and_the_stalled_one_sees_the_exit(
        page_factory, live_server, one_pass_study):
    """Catches: a stalled session never expiring at enrolment (the next worker would find nothing to
    rate), its unrated images not handed on (or handed with rated ones: over-collection), and an
    expired worker still shown a rating form or able to store a rating."""
    landed = []
    first = page_factory()
    stalled = arrive(first, live_server, one_pass_study, "Stalls-1")
    rate_in_page(first, 2)
    for _ in range(10):  # most of the rest quickly, by the same service the page calls
        rate_current(stalled)
    first.reload()
    expect(first.locator("header.bar span")).to_contain_text("13 of 15")
    left = unrated(stalled)
    assert len(left) == 3
    Session.objects.filter(rater=stalled).update(last_active_at=timezone.now() - STALL - timedelta(seconds=1))

    second = page_factory()
    second.route("https://example.org/**", lambda route: (landed.append(route.request.url), route.fulfill(
        status=200, content_type="text/html", body="<h1>platform: complete</h1>")))
    nextone = arrive(second, live_server, one_pass_study, "Next-2")
    assert Session.objects.get(rater=stalled).state == Session.State.EXPIRED  # expired by the enrolment
    given = set(SessionItem.objects.filter(session__rater=nextone, kind="test").values_list("stimulus_id", flat=True))
    assert given == left
    expect(second.locator("header.bar span")).to_contain_text("1 of 3")
    shot(second, "expiry-01-next-worker-gets-the-rest")
    rate_in_page(second, 2)
    with second.expect_navigation():
        second.keyboard.press("4")
    assert Session.objects.get(rater=nextone).state == Session.State.COMPLETE
    ratings = Rating.objects.filter(rater__study=one_pass_study)
    assert ratings.count() == 15 and ratings.values("stimulus").distinct().count() == 15  # each exactly once

    # The stalled worker comes back to their open tab: the exit, no form, nothing stored.
    first.reload()
    expect(first.get_by_role("heading", name=re.compile("expired", re.I))).to_be_visible()
    expect(first.locator("form[method=post] [name=score], button[name=score]")).to_have_count(0)
    shot(first, "expiry-02-stalled-worker-sees-the-exit")
    first.goto(f"{live_server.url}/r/{stalled.token}/rate/")
    expect(first.get_by_role("heading", name=re.compile("expired", re.I))).to_be_visible()
    assert Rating.objects.filter(rater=stalled).count() == 12
