"""A paired study through its real URLs (Django test client, real database): practice pairs with
feedback, judgments stored once with their sides, replays, forged and malformed answers refused."""

from __future__ import annotations

import re

import pytest

from ratings import studies
from ratings.models import Judgment, Session, SessionItem

from .conftest import ready_study

pytestmark = pytest.mark.django_db

PAIRED = """name = "pairflow"
seed = 5
datasets = ["Set5"]
methods = ["nearest", "bicubic", "hr"]
protocol = "pairwise"

[pairwise]
practice_pairs = 2
gold_pairs = 1
"""
FETCH = {"HTTP_X_RATING_CLIENT": "fetch", "HTTP_ACCEPT": "application/json"}


@pytest.fixture
def rater(datasets_root, media_root):
    return studies.create_invitations(ready_study(PAIRED, datasets_root), 1)[0]


def _start(client, rater):
    response = client.post(f"/r/{rater.token}/start/", {"consent": "yes", "device_pixel_ratio": "1",
                                                         "viewport": "1366x768"})
    assert response.status_code == 302
    return client.get(f"/r/{rater.token}/", follow=True)


def _token(page: str) -> str:
    return re.search(r'name="item" value="([^"]+)"', page).group(1)


def test_a_rater_judges_every_pair_once_and_gets_a_code(client, rater):
    """Practice answers are told (right or wrong) and stored as practice; every pair ends with one
    judgment whose side is the one posted; the page never names a method. Catches feedback on the
    wrong side, a judgment stored for the other side, and the session not completing."""
    page = _start(client, rater).content.decode()
    assert "Practice pair 1 of 2" in page and 'aria-label="Left"' in page and "bicubic" not in page and "nearest" not in page
    session = Session.objects.get(rater=rater)
    chosen = {}
    token = _token(page)
    for n in range(session.items.count()):
        item = session.items.get(position=session.position)
        side = "left" if n % 2 == 0 else "right"
        answer = client.post(f"/r/{rater.token}/pair/", {"item": token, "choice": side, "response_ms": "900",
                                                        "layout": "side", "toggles": "0"}, **FETCH).json()
        assert answer["ok"], answer
        chosen[item.pk] = side
        if item.kind == SessionItem.Kind.PRACTICE:
            right = side == item.expected_side
            assert answer["feedback"].startswith("Right" if right else "Not quite")
            assert f"the {item.expected_side} image is the original" in answer["feedback"]
        session.refresh_from_db()
        if "redirect" in answer:
            break
        token = answer["item"]
        assert set(answer["images"]) == {"left", "right"}
    assert answer["redirect"].endswith("/done/")
    session.refresh_from_db()
    assert session.state == Session.State.COMPLETE and session.completion_code
    stored = dict(Judgment.objects.filter(rater=rater).values_list("item_id", "side"))
    assert stored == chosen and len(stored) == session.items.count() == 2 + 3 * 5 + 1


def test_replays_forgeries_and_bad_sides_change_nothing(client, rater):
    """The same answer twice stores one judgment (a double click); the other side afterwards is
    refused and the first kept; a token of another rater, a forged token and a side that is
    neither are refused with nothing stored."""
    page = _start(client, rater).content.decode()
    token = _token(page)
    post = lambda data: client.post(f"/r/{rater.token}/pair/", data, **FETCH)  # noqa: E731
    assert post({"item": token, "choice": "up"}).status_code == 400
    assert post({"item": token[:-3] + "abc", "choice": "left"}).status_code == 400
    other = studies.create_invitations(rater.study, 1)[0]
    _start(client, other)
    other_token = _token(client.get(f"/r/{other.token}/pair/").content.decode())
    assert post({"item": other_token, "choice": "left"}).status_code == 403
    assert not Judgment.objects.filter(rater=rater).exists()
    assert post({"item": token, "choice": "left"}).json()["stored"] is True
    assert post({"item": token, "choice": "left"}).json()["stored"] is False
    assert post({"item": token, "choice": "right"}).status_code == 409
    assert list(Judgment.objects.filter(rater=rater).values_list("side", flat=True)) == ["left"]


def test_without_javascript_the_form_posts_and_pages_follow(client, rater):
    """A plain form post (no fetch header) is answered with a redirect to the next page."""
    page = _start(client, rater).content.decode()
    response = client.post(f"/r/{rater.token}/pair/", {"item": _token(page), "choice": "right"})
    assert response.status_code == 302 and response["Location"].endswith("/pair/")
    assert Judgment.objects.filter(rater=rater, side="right").count() == 1


def test_the_paired_report_is_built_from_the_judgments(client, rater, tmp_path):
    """Every judgment reaches judgments.csv with the method on each side and the one chosen (gold
    pairs as gold, practice pairs left out), and the report is the paired one. Catches left and
    right swapped between the database and the analysis, and practice answers scaled."""
    import pandas as pd

    from ratings.reports import export_report

    page = _start(client, rater).content.decode()
    token = _token(page)
    while True:
        answer = client.post(f"/r/{rater.token}/pair/", {"item": token, "choice": "left"}, **FETCH).json()
        if "redirect" in answer:
            break
        token = answer["item"]
    paths = export_report(rater.study, tmp_path, n_boot=50)
    judged = pd.read_csv(paths["judgments"])
    items = SessionItem.objects.filter(session__rater=rater).exclude(kind="practice").select_related(
        "stimulus__condition", "right_stimulus__condition")
    assert len(judged) == items.count() == 3 * 5 + 1
    assert (judged["choice"] == judged["method_a"]).all()  # "left" every time: the left method chosen
    assert sorted(judged["method_a"]) == sorted(i.stimulus.condition.name for i in items)
    gold = judged[judged["kind"] == "gold"]
    assert len(gold) == 1 and gold["expected_choice"].iloc[0] == "hr"
    scale = pd.read_csv(paths["pairwise_scale"])
    assert set(scale["method"]) == {"nearest", "bicubic", "hr"} and "Paired comparison" in paths["html"].read_text()


def test_the_dashboard_shows_the_paired_studys_answers_and_scale(client, rater, admin_client):
    """A paired study's dashboard counts judgments as its answers (per rater and against the last
    build) and shows the JOD scale of the build. Catches a dashboard that counts ratings only (0
    rated, "0 new since") or reads an ACR build's mos.csv from a paired build."""
    from ratings import reports

    page = _start(client, rater).content.decode()
    answer = client.post(f"/r/{rater.token}/pair/", {"item": _token(page), "choice": "left"}, **FETCH).json()
    for _ in range(5):
        answer = client.post(f"/r/{rater.token}/pair/", {"item": answer["item"], "choice": "right"}, **FETCH).json()
    reports.build(rater.study, n_boot=50)
    client.post(f"/r/{rater.token}/pair/", {"item": answer["item"], "choice": "left"}, **FETCH)
    html = admin_client.get(f"/studies/{rater.study.name}/").content.decode()
    assert "Preference scale so far" in html and "JOD" in html
    assert "from 6 of 7 judgments; 1 new since" in html
    assert re.search(r"<td class=\"num\">7</td>", html)  # the rater's answers, practice included


def test_the_original_is_shown_beside_the_pair_when_asked(client, datasets_root, media_root):
    """reference = "hr": every pair page carries the original of its image (served to this rater),
    the original is never one of the pair, and the question says what to compare. Catches the
    reference left out of the payload or refused by the image view."""
    text = PAIRED.replace("[pairwise]", '[pairwise]\nreference = "hr"').replace("gold_pairs = 1", "gold_pairs = 0")
    rater = studies.create_invitations(ready_study(text.replace('name = "pairflow"', 'name = "withref"'),
                                                   datasets_root), 1)[0]
    page = _start(client, rater).content.decode()
    token = _token(page)
    for _ in range(2):  # past the practice pairs
        answer = client.post(f"/r/{rater.token}/pair/", {"item": token, "choice": "left"}, **FETCH).json()
        token = answer["item"]
    assert "closer to the original" in answer["question"] and set(answer["images"]) == {"left", "right", "reference"}
    item = SessionItem.objects.get(session__rater=rater, position=Session.objects.get(rater=rater).position)
    assert "hr" not in (item.stimulus.condition.name, item.right_stimulus.condition.name)
    assert client.get(answer["images"]["reference"]).status_code == 200
    page = client.get(f"/r/{rater.token}/pair/").content.decode()
    assert 'id="img-reference"' in page and "Show original" in page
