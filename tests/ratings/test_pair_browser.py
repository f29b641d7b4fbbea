"""Paired judgments end to end in a real Chromium: by keyboard and by mouse, side by side and in the
toggle layout (1366x768 with Set14's largest image), a reload midway, a 2afc-real study, and a stale
page refused. Screenshots go to test-artifacts/browser/."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from ratings import studies
from ratings.models import Judgment, Session, SessionItem

from .conftest import ready_study, shot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SET14 = """name = "pairs14"
seed = 9
datasets = ["Set14"]
methods = ["nearest", "bicubic", "hr"]
protocol = "pairwise"

[pairwise]
practice_pairs = 1
"""
REAL = """name = "real5"
seed = 4
datasets = ["Set5"]
methods = ["bicubic", "hr"]
protocol = "2afc-real"

[pairwise]
practice_pairs = 0
"""



def _start(page, live_server, rater):
    page.goto(f"{live_server.url}/r/{rater.token}/")
    page.get_by_label("I have read the above and agree to take part.").check()
    page.get_by_role("button", name="Start").click()
    page.wait_for_url("**/pair/")


def _progress(page) -> str:
    return page.locator("#progress-text").inner_text()


def _ready(page):
    expect(page.get_by_role("button", name="Left", exact=True)).to_be_enabled()


def _answer_and_wait(page, action, before: str):
    action()
    page.wait_for_function(
        """(before) => {
            const t = document.getElementById("progress-text");
            return !t || !location.pathname.endsWith("/pair/") || t.textContent !== before;
        }""", arg=before, timeout=15000)
    page.wait_for_load_state()


def test_by_keyboard_and_mouse_in_both_layouts_with_a_reload(page_factory, live_server, datasets_root, media_root):
    """1366x768: Set14's 768x512 image cannot stand twice side by side, so its pairs are shown one at a
    time (Space or the Show buttons switch, the other version hidden but decoded); smaller ones side
    by side. Answers alternate between keys and mouse clicks in both layouts; every one is stored as
    that side; a reload midway resumes at the same pair. Catches sides swapped
    between the page and the database, a layout that lets a pair overflow the window, and a resume
    that skips or repeats a pair."""
    study = ready_study(SET14, datasets_root)
    rater = studies.create_invitations(study, 1)[0]
    page = page_factory(1366, 768)
    _start(page, live_server, rater)
    session = Session.objects.get(rater=rater)
    total = session.items.count()
    layouts, pressed, shots = set(), {}, set()
    for k in range(total):
        _ready(page)
        if k == total // 2:
            page.reload()
            _ready(page)
            shot(page, "pair-03-after-reload")
        session.refresh_from_db()
        item = session.items.select_related("stimulus__image").get(position=session.position)
        layout = page.locator("#pair-stage").get_attribute("data-layout")
        layouts.add(layout)
        wide = item.stimulus.image.width * 2 + 16 > 1366
        assert layout == ("toggle" if wide else "side"), (item.stimulus.image.name, layout)
        if layout == "toggle":
            expect(page.locator("#frame-right")).to_have_class(re.compile("hidden-version"))
            if k % 2:
                page.get_by_role("button", name="Show right").click()
            else:
                page.keyboard.press("Space")
            expect(page.locator("#showing")).to_have_text("Right")
            expect(page.locator("#frame-left")).to_have_class(re.compile("hidden-version"))
            if "toggle" not in shots:
                shot(page, "pair-02-toggle")
                shots.add("toggle")
        elif "side" not in shots:
            shot(page, "pair-01-side-by-side")
            shots.add("side")
        key, side = [("ArrowLeft", "left"), ("2", "right"), ("1", "left"), ("ArrowRight", "right")][k % 4]
        pressed[item.pk] = side
        if k % 3 == 2:  # the mouse: the answer buttons by their accessible names
            action = lambda side=side: page.get_by_role("button", name=side.title(), exact=True).click()  # noqa: E731
        else:
            action = lambda key=key: page.keyboard.press(key)  # noqa: E731
        _answer_and_wait(page, action, _progress(page))
    page.wait_for_url("**/done/")
    shot(page, "pair-04-done")
    assert layouts == {"side", "toggle"}
    assert dict(Judgment.objects.filter(rater=rater).values_list("item_id", "side")) == pressed
    toggled = Judgment.objects.filter(rater=rater, layout="toggle")
    assert toggled.exists() and all(j.toggles >= 1 for j in toggled)


def test_by_mouse_on_a_2afc_real_study_and_a_stale_page(page_factory, live_server, datasets_root, media_root):
    """Buttons named Left / Right (no method named anywhere on the page); a second tab that fell
    behind is refused with nothing stored twice. Catches a page that shows method names, and a
    stale tab's answer stored for the item shown now."""
    study = ready_study(REAL, datasets_root)
    rater = studies.create_invitations(study, 1)[0]
    page = page_factory(1600, 900)
    _start(page, live_server, rater)
    stale = page.context.new_page()
    stale.goto(page.url)
    body = page.content()
    assert "bicubic" not in body and "hr.png" not in body and "which of the two is the real photograph" in body.lower()
    total = SessionItem.objects.filter(session__rater=rater).count()
    for k in range(total):
        _ready(page)
        name = "Left" if k % 2 == 0 else "Right"
        _answer_and_wait(page, lambda name=name: page.get_by_role("button", name=name, exact=True).click(),
                         _progress(page))
        if k == 0:
            shot(page, "pair-05-2afc-real")
            _ready(stale)
            stale.get_by_role("button", name="Right", exact=True).click()
            expect(stale.locator("#refusal")).to_contain_text("already")
    page.wait_for_url("**/done/")
    sides = list(Judgment.objects.filter(rater=rater).order_by("item__position").values_list("side", flat=True))
    assert sides == ["left" if k % 2 == 0 else "right" for k in range(total)]
