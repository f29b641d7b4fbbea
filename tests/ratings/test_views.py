"""The rater pages over HTTP (Django's test client): what they show, hide and refuse."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from ratings import sessions, studies
from ratings.models import Rater, Rating, Session, Stimulus, Study
from ratings.study_file import parse_study_file

from .conftest import RATING_STUDY

pytestmark = pytest.mark.django_db

_METHOD_WORDS = re.compile(r"nearest|bicubic|srresnet|srgan|\bhr\b|Set5|img_0", re.IGNORECASE)
# Random tokens (token_urlsafe(18): 24 characters; signed item tokens: longer, with ':') may spell
# "hr" or "set5" by chance: they are taken out before looking for method words.
_TOKENS = re.compile(r"[A-Za-z0-9_:-]{24,}")


def method_words(text: str):
    """A method or file word outside random tokens (a token made the page test fail about 1 run in 50)."""
    return _METHOD_WORDS.search(_TOKENS.sub(" ", text))


@pytest.fixture
def study(rating_study):
    return rating_study


@pytest.fixture
def rater(study):
    return studies.create_invitations(study, 1)[0]


def consent(client, rater):
    return client.post(f"/r/{rater.token}/start/", {"consent": "yes", "device_pixel_ratio": "1", "viewport": "1366x768"})


def to_rating(client, rater):
    consent(client, rater)
    session = Session.objects.get(rater=rater)
    while session.state == Session.State.CALIBRATION:
        client.post(f"/r/{rater.token}/calibrate/", {"position": session.position})
        session.refresh_from_db()
    return session


def test_pages_lead_the_rater_through_the_steps(client, rater):
    response = client.get(f"/r/{rater.token}/")
    assert response.status_code == 302 and response["Location"].endswith("/start/")
    page = client.get(f"/r/{rater.token}/start/").content.decode()
    assert "Start" in page and "consent" in page.lower()
    response = consent(client, rater)
    assert response["Location"].endswith("/calibrate/")
    page = client.get(response["Location"]).content.decode()
    assert "example of <strong class=\"score-1\">1 Bad</strong>" in page
    assert 'rel="preload" as="image"' in page


def test_consent_must_be_ticked(client, rater):
    response = client.post(f"/r/{rater.token}/start/", {"device_pixel_ratio": "1"})
    assert response.status_code == 400 and b"tick the box" in response.content
    assert Session.objects.get(rater=rater).state == Session.State.CONSENT


def test_rating_page_has_five_named_buttons_and_reveals_no_method(client, rater):
    to_rating(client, rater)
    page = client.get(f"/r/{rater.token}/rate/").content.decode()
    for label in ("1 Bad", "2 Poor", "3 Fair", "4 Good", "5 Excellent"):
        assert f">{label}</button>" in page
    assert not method_words(page), method_words(page)
    image_urls = re.findall(r'/r/[^"]+/img/[^"]+', page)
    assert image_urls  # the shown and the preloaded image, by opaque id
    response = client.get(image_urls[0])
    assert response["Content-Type"] == "image/png"
    assert "filename" not in response.get("Content-Disposition", "")
    assert not method_words(" ".join(f"{k}: {v}" for k, v in response.items()))


def test_images_are_served_only_to_raters_of_their_study(client, study, rater, datasets_root):
    to_rating(client, rater)
    other_study = studies.create_or_resume_study(parse_study_file(
        RATING_STUDY.replace('name = "rating"', 'name = "other"'), "o.toml", datasets_root=datasets_root)).study
    outsider = studies.create_invitations(other_study, 1)[0]
    stimulus = Stimulus.objects.filter(study=study).first()
    assert client.get(f"/r/{outsider.token}/img/{stimulus.public_id}").status_code == 404
    assert client.get(f"/r/{rater.token}/img/{stimulus.public_id}").status_code == 200
    assert client.get(f"/r/{rater.token}/img/made-up-id").status_code == 404
    assert client.get(f"/r/made-up-token/img/{stimulus.public_id}").status_code == 404
    assert client.get("/r/no-such-token/").status_code == 404


def test_an_image_is_served_once_the_session_is_drawn_after_a_first_miss(client, study):
    """A miss (no session items before consent) is not cached: the image is served after consent."""
    rater = studies.create_invitations(study, 1)[0]
    stimulus = Stimulus.objects.filter(study=study, image__dataset__role="test").first()
    assert client.get(f"/r/{rater.token}/img/{stimulus.public_id}").status_code == 404  # not drawn yet
    consent(client, rater)
    assert client.get(f"/r/{rater.token}/img/{stimulus.public_id}").status_code == 200


def test_a_rating_by_post_then_replay(client, rater):
    session = to_rating(client, rater)
    page = client.get(f"/r/{rater.token}/rate/").content.decode()
    token = re.search(r'name="item" value="([^"]+)"', page).group(1)
    response = client.post(f"/r/{rater.token}/rate/", {"item": token, "score": "4", "response_ms": "850"})
    assert response.status_code == 302
    rating = Rating.objects.get(rater=rater)
    assert (rating.score, rating.response_ms) == (4, 850)
    again = client.post(f"/r/{rater.token}/rate/", {"item": token, "score": "4"})
    assert again.status_code == 302 and Rating.objects.filter(rater=rater).count() == 1
    changed = client.post(f"/r/{rater.token}/rate/", {"item": token, "score": "1"})
    assert changed.status_code == 409 and b"first answer was kept" in changed.content
    assert Rating.objects.get(rater=rater).score == 4
    assert Session.objects.get(rater=rater).position == session.position + 1


def test_out_of_range_score_over_http(client, rater):
    to_rating(client, rater)
    page = client.get(f"/r/{rater.token}/rate/").content.decode()
    token = re.search(r'name="item" value="([^"]+)"', page).group(1)
    response = client.post(f"/r/{rater.token}/rate/", {"item": token, "score": "7"})
    assert response.status_code == 400 and b"from 1 to 5" in response.content
    assert Rating.objects.count() == 0


def test_missing_csrf_token_is_refused_with_a_clear_page(rater):
    strict = Client(enforce_csrf_checks=True)
    page = strict.get(f"/r/{rater.token}/start/")  # sets the CSRF cookie
    assert page.status_code == 200
    response = strict.post(f"/r/{rater.token}/start/", {"consent": "yes"})
    assert response.status_code == 403
    assert b"Nothing was stored" in response.content and b"reload" in response.content
    assert Session.objects.get(rater=rater).state == Session.State.CONSENT


def test_completion_page_shows_the_code(client, rater):
    session = to_rating(client, rater)
    while session.state != Session.State.COMPLETE:
        item = sessions.current_item(session)
        client.post(f"/r/{rater.token}/rate/", {"item": sessions.item_token(item), "score": "3"})
        session.refresh_from_db()
    page = client.get(f"/r/{rater.token}/").content.decode()
    assert "Thank you" not in page  # a redirect first
    page = client.get(f"/r/{rater.token}/done/").content.decode()
    assert session.completion_code in page


def test_dashboard_needs_a_staff_login(client, admin_client, study, rater):
    assert client.get(f"/studies/{study.name}/").status_code == 302
    to_rating(client, rater)
    page = admin_client.get(f"/studies/{study.name}/").content.decode()
    assert "MOS so far" in page and rater.label in page
    assert admin_client.get("/studies/").status_code == 200


def test_fetch_submission_returns_the_next_item_as_json(client, rater):
    to_rating(client, rater)
    page = client.get(f"/r/{rater.token}/rate/").content.decode()
    token = re.search(r'name="item" value="([^"]+)"', page).group(1)
    headers = {"HTTP_X_RATING_CLIENT": "fetch"}
    data = client.post(f"/r/{rater.token}/rate/", {"item": token, "score": "5"}, **headers).json()
    assert data["ok"] and data["stored"] and data["number"] == 2 and data["done"] == 1 and data["total"] == 19
    named = sessions.item_tokens.check_token
    assert named(rater, data["item"]) != named(rater, token) and "/img/" in data["image_url"]
    assert not method_words(str(data))
    replay = client.post(f"/r/{rater.token}/rate/", {"item": token, "score": "5"}, **headers).json()
    # The same next item: compared by what the token names, not as text (a token is signed with the
    # second it was made in, so two tokens of one item differ across a second boundary).
    assert replay["ok"] and not replay["stored"] and named(rater, replay["item"]) == named(rater, data["item"])
    refused = client.post(f"/r/{rater.token}/rate/", {"item": token, "score": "2"}, **headers)
    assert refused.status_code == 409
    assert not refused.json()["ok"] and "first answer was kept" in refused.json()["message"]
    assert Rating.objects.filter(rater=rater).count() == 1


def test_fetch_submission_of_the_last_item_redirects_to_the_end(client, rater):
    session = to_rating(client, rater)
    data = None
    while session.state != Session.State.COMPLETE:
        item = sessions.current_item(session)
        data = client.post(f"/r/{rater.token}/rate/", {"item": sessions.item_token(item), "score": "3"},
                           HTTP_X_RATING_CLIENT="fetch").json()
        session.refresh_from_db()
    assert data["redirect"] == f"/r/{rater.token}/done/"


def test_a_closed_study_answers_410_gone_and_stores_nothing(client, study, rater):
    to_rating(client, rater)
    page = client.get(f"/r/{rater.token}/rate/").content.decode()
    token = re.search(r'name="item" value="([^"]+)"', page).group(1)
    study.state = Study.State.CLOSED
    study.save(update_fields=["state"])
    response = client.post(f"/r/{rater.token}/rate/", {"item": token, "score": "4", "response_ms": "900"},
                           HTTP_X_RATING_CLIENT="fetch")
    assert response.status_code == 410
    data = response.json()
    assert data["ok"] is False and "study is closed" in data["message"] and "nothing was stored" in data["message"]
    plain = client.post(f"/r/{rater.token}/rate/", {"item": token, "score": "4"})  # no JavaScript
    assert plain.status_code == 410 and b"study is closed" in plain.content
    assert Rating.objects.count() == 0
    again = client.get(f"/r/{rater.token}/rate/")  # the rater's Continue link: no rating form
    assert again.status_code == 410 and b'id="rating-form"' not in again.content


@pytest.mark.parametrize("sent", ["inf", "nan", "-1", "1e309", "abc"])
def test_an_impossible_device_pixel_ratio_is_not_stored(client, rater, sent):
    """Catches float(POST value) stored as is: device_pixel_ratio=inf reached the database."""
    response = client.post(f"/r/{rater.token}/start/", {"consent": "yes", "device_pixel_ratio": sent, "viewport": "800x600"})
    assert response.status_code == 302  # consent is still taken
    rater.refresh_from_db()
    assert rater.device_pixel_ratio is None and rater.viewport == "800x600"
    assert Session.objects.get(rater=rater).state != Session.State.CONSENT


def test_every_page_carries_a_content_security_policy(client, admin_client, study, rater):
    """Catches pages without a CSP (and the inline script the consent page had, which it would block)."""
    pages = [f"/r/{rater.token}/start/", f"/join/{study.open_enrolment_token}/", "/admin/login/", "/no-such-page/",
             f"/r/{rater.token}/img/not-a-stimulus"]
    for url in pages:
        policy = client.get(url).headers.get("Content-Security-Policy", "")
        assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy and "'unsafe-inline'" not in policy, url
    assert "default-src 'self'" in admin_client.get(f"/studies/{study.name}/").headers["Content-Security-Policy"]
    consent_page = client.get(f"/r/{rater.token}/start/").content.decode()
    assert "<script>" not in consent_page and "consent.js" in consent_page


# -- the rater flow in one layer (issue 16 item 4) -------------------------------------------------
def page_payload(page: str) -> dict:
    """The step as the rating page shows it: the fields rater.js replaces from a JSON answer."""
    number, total = re.search(r'id="progress-text"[^>]*>Image (\d+) of (\d+)<', page).groups()
    preload = re.search(r'data-next="([^"]+)"', page)
    return {"item": re.search(r'name="item" value="([^"]+)"', page).group(1),
            "image_url": re.search(r'id="stimulus" src="([^"]+)"', page).group(1),
            "next_url": preload.group(1) if preload else None, "number": int(number), "total": int(total),
            "done": int(re.search(r'id="progress-bar" value="(\d+)"', page).group(1))}


def test_the_rating_page_and_the_json_answer_carry_the_same_step(client, rater):
    """One payload builder: after each rating the JSON answer holds exactly what the rating page shows
    when loaded for the same step. Catches the two builders drifting (a progress count off by one,
    the preload URL of the wrong item, a token for another position)."""
    to_rating(client, rater)
    page = page_payload(client.get(f"/r/{rater.token}/rate/").content.decode())
    for _ in range(3):
        answer = client.post(f"/r/{rater.token}/rate/", {"item": page["item"], "score": "3"},
                             HTTP_X_RATING_CLIENT="fetch").json()
        assert answer.pop("ok") and answer.pop("stored")
        page = page_payload(client.get(f"/r/{rater.token}/rate/").content.decode())
        # Tokens carry a signing time: compare what they name, and everything else exactly.
        assert sessions.item_tokens.check_token(rater, answer.pop("item")) == \
            sessions.item_tokens.check_token(rater, page.pop("item"))
        assert answer == {key: value for key, value in page.items() if key != "item"}
        page = page_payload(client.get(f"/r/{rater.token}/rate/").content.decode())


@pytest.mark.parametrize("score", ["0", "6", "-1", "x", "", "3.5", None])
def test_a_score_outside_the_scale_is_refused_by_page_and_by_json(client, rater, score):
    """Form errors keep their old status and words: catches a RatingForm whose errors became 200 with
    the form shown again, or Django's generic messages ("Enter a whole number.")."""
    to_rating(client, rater)
    page = client.get(f"/r/{rater.token}/rate/").content.decode()
    token = re.search(r'name="item" value="([^"]+)"', page).group(1)
    data = {"item": token} if score is None else {"item": token, "score": score}
    plain = client.post(f"/r/{rater.token}/rate/", data)
    assert plain.status_code == 400 and b"1 to 5" in plain.content
    answer = client.post(f"/r/{rater.token}/rate/", data, HTTP_X_RATING_CLIENT="fetch")
    assert answer.status_code == 400 and not answer.json()["ok"] and "1 to 5" in answer.json()["message"]
    assert answer.json()["continue"] == f"/r/{rater.token}/"
    assert Rating.objects.count() == 0


def test_a_missing_token_or_calibration_position_is_refused_with_400(client, rater):
    """Catches a missing item token answered with a form error page of another status, or passed on
    as an empty string that matched something, and a non-number calibration position that raised (500)."""
    consent(client, rater)
    for sent in ({}, {"position": "abc"}, {"position": "-1"}, {"position": "99"}):
        response = client.post(f"/r/{rater.token}/calibrate/", sent)
        assert response.status_code == 400 and b"not one of your calibration images" in response.content
    assert Session.objects.get(rater=rater).position == 0
    to_rating(client, rater)
    response = client.post(f"/r/{rater.token}/rate/", {"score": "3"})
    assert response.status_code == 400 and b"damaged or forged" in response.content
    assert Rating.objects.count() == 0


# -- the viewing-environment rules at consent (issue 18) ----------------------------------------------
def _consent_from(client, rater, user_agent, **reported):
    sent = {"consent": "yes", "device_pixel_ratio": "1", "viewport": "1366x768", "screen": "1920x1080",
            "coarse_pointer": "0", "touch_points": "0", **reported}
    return client.post(f"/r/{rater.token}/start/", sent, HTTP_USER_AGENT=user_agent)


def test_consent_reports_screen_and_device_and_screens_out_before_any_item(client, datasets_root, media_root):
    """The consent page's fields reach the rules: a desktop with a large screen starts (its screen and
    device type stored); a small screen and an iPhone are screened out with the reason in words and
    no item drawn (so a balanced pool loses nothing); a browser that reports no screen is asked to
    allow JavaScript, and nothing is stored. Catches the fields missing from the page or the form,
    the user agent not read, the rules applied after the items are drawn, and a missing screen
    taken as large enough."""
    from .qualified import DESKTOP_CHROME, IPHONE_SAFARI, qualified_study

    study = qualified_study(datasets_root)
    page = client.get(f"/r/{studies.create_invitations(study, 1)[0].token}/start/").content.decode()
    for field in ('name="screen"', 'name="coarse_pointer"', 'name="touch_points"', "training image"):
        assert field in page
    desktop, small, phone, blind = studies.create_invitations(study, 4)
    assert _consent_from(client, desktop, DESKTOP_CHROME)["Location"].endswith("/calibrate/")
    desktop.refresh_from_db()
    assert (desktop.screen, desktop.device_type) == ("1920x1080", "desktop")

    for rater, user_agent, reported, reason in (
            (small, DESKTOP_CHROME, {"screen": "1280x700"},
             "qualification: the screen is 1280 x 700 CSS pixels; this study needs at least 1280 x 720"),
            (phone, IPHONE_SAFARI, {"screen": "390x844", "coarse_pointer": "1", "touch_points": "5"},
             "qualification: a phone is not used in this study (allowed: desktop)")):
        response = _consent_from(client, rater, user_agent, **reported)
        assert response.status_code == 302 and response["Location"].endswith("/done/")
        session = Session.objects.get(rater=rater)
        assert (session.state, session.end_reason) == (Session.State.SCREENED_OUT, reason)
        assert not session.items.exists() and session.ended_at is not None
        assert session.completion_code == sessions.completion_code(rater, "screened_out")
        rater.refresh_from_db()
        assert rater.screen == reported["screen"] and rater.consent_at is not None
    assert Rater.objects.get(pk=phone.pk).device_type == "phone"

    response = _consent_from(client, blind, DESKTOP_CHROME, screen="")
    assert response.status_code == 400 and b"allow JavaScript" in response.content
    assert Session.objects.get(rater=blind).state == Session.State.CONSENT and not Session.objects.get(
        rater=blind).items.exists()
