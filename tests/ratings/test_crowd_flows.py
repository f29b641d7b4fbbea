"""Crowd platform flows through the real URLs (test client, real database): a worker's arrival from
the platform's parameters (a start page; only its POST enrols), MTurk's preview, the exits of a
finished, screened-out or expired session, and enrolment against a target of completed sessions."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client
from django.utils import timezone

from ratings import crowd, enrolment, expiry, sessions
from ratings.crowd import parse_crowd
from ratings.models import Rater, Session, Study

from .designs import set_design
from .test_sessions import rate_current, skip_calibration

pytestmark = pytest.mark.django_db

PROLIFIC = {"platform": "prolific",
            "completion_url": "https://app.prolific.com/submissions/complete?cc={code}",
            "screened_out_url": "https://app.prolific.com/submissions/complete?cc=OUT{code}"}
MTURK = {"platform": "mturk"}
SANDBOX = "https://workersandbox.mturk.com"


def set_crowd(study: Study, table: dict) -> Study:
    """Give a test study a ``[crowd]`` table, stored where the study file puts it (``config["crowd"]``)."""
    config = Study.objects.get(pk=study.pk).config
    config["crowd"] = parse_crowd(table).to_json()
    Study.objects.filter(pk=study.pk).update(config=config)
    study.refresh_from_db()
    return study


def crowd_study(study: Study, table: dict) -> Study:
    """The test study run on a crowd platform, with a target of 2 completed sessions."""
    set_design(study, raters=2)
    return set_crowd(study, table)


@pytest.fixture
def prolific(rating_study):
    return crowd_study(rating_study, PROLIFIC)


@pytest.fixture
def mturk(rating_study):
    return crowd_study(rating_study, MTURK)


def join_url(study) -> str:
    return f"/join/{study.open_enrolment_token}/"


def prolific_params(pid="5f3cABC", study_id="S1", session_id="X9") -> dict:
    return {"PROLIFIC_PID": pid, "STUDY_ID": study_id, "SESSION_ID": session_id}


def mturk_params(worker="A2WORKER", assignment="ASSIGN1", submit=SANDBOX) -> dict:
    return {"assignmentId": assignment, "hitId": "HIT1", "workerId": worker, "turkSubmitTo": submit}


def arrive(client, study, params, address="10.0.0.1"):
    """What the start page's button does: POST the link's parameters back."""
    return client.post(join_url(study), params, REMOTE_ADDR=address)


def finish(rater: Rater) -> Session:
    """Consent, calibration and every item rated, through the session service."""
    sessions.start_session(rater, device_pixel_ratio=1.0, viewport="1366x768")
    session = skip_calibration(rater)
    while session.state != Session.State.COMPLETE:
        session = rate_current(rater).session
    return session


def enrolled(study, params, client=None) -> tuple[Rater, Client]:
    client = client or Client()
    response = arrive(client, study, params)
    assert response.status_code == 302, response.content.decode()[:500]
    return Rater.objects.get(token=response["Location"].split("/")[2]), client


# -- arrival ----------------------------------------------------------------------------------------
def test_a_get_shows_the_start_page_and_never_enrols(client, prolific):
    """Catches enrolment on GET: a link preview or prefetch would create a rater."""
    for _ in range(3):
        page = client.get(join_url(prolific), prolific_params())
        assert page.status_code == 200
    html = page.content.decode()
    assert 'method="post"' in html and "Start the study" in html
    for name, value in prolific_params().items():
        assert f'name="{name}" value="{value}"' in html  # posted back as hidden fields
    assert not Rater.objects.exists() and not Session.objects.exists()


def test_prolific_arrival_stores_the_platform_id_and_the_other_ids(prolific):
    """Catches the bare id stored (it would collide with MTurk's) and STUDY_ID/SESSION_ID dropped."""
    rater, _ = enrolled(prolific, prolific_params(pid=" 5f3cABC "))
    assert rater.external_id == "prolific:5f3cabc" and rater.source == Rater.Source.OPEN
    assert rater.platform_ids == {"STUDY_ID": "S1", "SESSION_ID": "X9"}
    assert Session.objects.get(rater=rater).state == Session.State.CONSENT


def test_a_missing_worker_id_gets_a_page_naming_the_parameter(client, prolific):
    for response in (client.get(join_url(prolific), {"STUDY_ID": "S1"}), arrive(client, prolific, {"STUDY_ID": "S1"})):
        assert response.status_code == 400
        assert "PROLIFIC_PID is missing from the link" in response.content.decode()
    assert not Rater.objects.exists()


def test_a_lab_study_keeps_the_worker_id_form(client, rating_study):
    """Catches the crowd start page shown for a study without [crowd]."""
    set_design(rating_study, raters=2)
    page = client.get(join_url(rating_study), {"worker_id": "W1", "PROLIFIC_PID": "P1"})
    assert b"Your worker id on the crowd platform" in page.content and b'value="W1"' in page.content
    rater, _ = enrolled(rating_study, {"worker_id": "W1"})
    assert rater.external_id == "w1" and rater.platform_ids == {}


def test_link_values_with_markup_are_shown_escaped_and_a_worker_id_with_markup_is_refused(client, prolific):
    """Catches a template printing a link's value with |safe or outside autoescape (the platform's
    other ids go back into the start page's hidden fields), and a worker id with markup let in."""
    evil = '<script>alert(1)</script>"'
    html = client.get(join_url(prolific), prolific_params(session_id=evil)).content.decode()
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;&quot;" in html
    refused = client.get(join_url(prolific), prolific_params(pid=evil))
    assert refused.status_code == 400 and "<script>alert" not in refused.content.decode()
    assert not Rater.objects.exists()


# -- returning workers --------------------------------------------------------------------------------
def test_the_same_browser_resumes_and_another_is_refused(prolific):
    """Catches a second rater for a second tab, and the rater's link handed to another browser."""
    rater, client = enrolled(prolific, prolific_params())
    again = arrive(client, prolific, prolific_params(session_id="X10"))
    assert again.status_code == 302 and again["Location"] == f"/r/{rater.token}/"
    rater.refresh_from_db()
    assert rater.platform_ids["SESSION_ID"] == "X10"  # the newer value (MTurk: the assignment to submit)
    other = arrive(Client(), prolific, prolific_params(), address="10.9.9.9")
    assert other.status_code == 409 and rater.token not in other.content.decode()
    assert Rater.objects.count() == 1


def test_the_same_id_on_two_platforms_is_two_raters(prolific):
    """Catches ids stored without the platform's name: the MTurk worker would be refused as the
    Prolific one (409), or worse, handed their session."""
    first, _ = enrolled(prolific, prolific_params(pid="ABC"))
    set_crowd(prolific, MTURK)
    second, _ = enrolled(prolific, mturk_params(worker="ABC"))
    assert first != second
    assert {first.external_id, second.external_id} == {crowd.platform_worker_id("prolific", "abc"),
                                                       crowd.platform_worker_id("mturk", "abc")}
    assert second.platform_ids == {"assignmentId": "ASSIGN1", "hitId": "HIT1", "turkSubmitTo": SANDBOX}


# -- MTurk --------------------------------------------------------------------------------------------
def test_the_mturk_preview_shows_the_task_and_a_sample_and_stores_nothing(client, mturk):
    """Catches enrolment in preview (MTurk loads the page before the HIT is accepted), and a sample
    image served from the study's test stimuli (it would show a method's output)."""
    for params in ({"assignmentId": crowd.MTURK_PREVIEW, "hitId": "HIT1"}, {}):
        page = client.get(join_url(mturk), params)
        html = page.content.decode()
        assert page.status_code == 200 and "Accept the HIT to start" in html
        assert "<form" not in html and "<button" not in html
    assert arrive(client, mturk, {"assignmentId": crowd.MTURK_PREVIEW}).status_code == 400
    sample = client.get(f"{join_url(mturk)}sample/")
    assert sample.status_code == 200 and sample["Content-Type"] == "image/png"
    from ratings.preview import sample_stimulus

    stimulus = sample_stimulus(mturk)
    assert stimulus.condition.name == "hr" and stimulus.image.dataset.role == "calibration"
    from ratings.stimulus_files import media_file

    assert b"".join(sample.streaming_content) == media_file(stimulus.file).read_bytes()
    assert page["Content-Security-Policy"].count("frame-ancestors https://*.mturk.com") == 1
    assert "X-Frame-Options" not in page
    assert not Rater.objects.exists()


def test_a_lab_study_has_no_sample(client, rating_study):
    assert client.get(f"{join_url(rating_study)}sample/").status_code == 404


def test_a_foreign_turk_submit_to_is_refused_at_the_door(client, mturk):
    """Catches a submit address taken from the link unchecked: the completion code would go to it."""
    for bad in ("https://evil.example", "https://www.mturk.com.evil.example"):
        params = mturk_params(submit=bad)
        assert client.get(join_url(mturk), params).status_code == 400
        response = arrive(client, mturk, params)
        assert response.status_code == 400 and "not an MTurk address" in response.content.decode()
    assert not Rater.objects.exists()


def test_the_mturk_exit_posts_the_assignment_and_code_to_turk_submit_to(mturk):
    """Catches the code sent elsewhere than the assignment's submit address, a missing field, and a
    page that MTurk cannot frame or whose form the policy blocks."""
    rater, client = enrolled(mturk, mturk_params())
    session = finish(rater)
    page = client.get(f"/r/{rater.token}/done/")
    html = page.content.decode()
    assert page.status_code == 200
    assert f'action="{SANDBOX}/mturk/externalSubmit"' in html and 'method="post"' in html
    assert 'name="assignmentId" value="ASSIGN1"' in html
    assert f'name="completion_code" value="{session.completion_code}"' in html
    policy = page["Content-Security-Policy"]
    assert f"form-action 'self' {SANDBOX}" in policy and "frame-ancestors https://*.mturk.com" in policy
    assert "frame-ancestors 'none'" not in policy and "X-Frame-Options" not in page


# -- exits ----------------------------------------------------------------------------------------------
def test_a_finished_prolific_worker_is_sent_back_with_the_code(prolific):
    """Catches the exit without the code, or with it unquoted, and the code not shown as a fallback."""
    rater, client = enrolled(prolific, prolific_params())
    session = finish(rater)
    html = client.get(f"/r/{rater.token}/done/").content.decode()
    url = f"https://app.prolific.com/submissions/complete?cc={session.completion_code}"
    assert f'<meta http-equiv="refresh" content="2;url={url}">' in html
    assert f'href="{url}"' in html and session.completion_code in html
    assert client.get(f"/r/{rater.token}/done/").content.decode() == html  # a reload exits the same way


def test_a_screened_out_worker_exits_through_the_screened_out_route(prolific):
    """Catches the finished workers' code (or URL) given to a screened-out worker."""
    rater, client = enrolled(prolific, prolific_params())
    sessions.start_session(rater, device_pixel_ratio=1.0, viewport="1366x768")
    Session.objects.filter(rater=rater).update(state=Session.State.SCREENED_OUT, ended_at=timezone.now(),
                                               end_reason="failed the training")
    html = client.get(f"/r/{rater.token}/", follow=True).content.decode()
    out = sessions.completion_code(rater, "screened_out")
    assert f"https://app.prolific.com/submissions/complete?cc=OUT{out}" in html
    assert sessions.completion_code(rater) not in html


def test_prolifics_fixed_codes_replace_each_workers_own_at_the_exits(prolific):
    """With [crowd] completion_code / screened_out_code (the codes of Prolific's study form), the
    exits carry those, so Prolific recognises them; catches the worker's own code still sent (every
    submission left awaiting review) and the two fixed codes mixed up."""
    fixed = {**prolific.crowd.to_json(), "completion_code": "C1A2B3C4", "screened_out_code": "S9X8Y7"}
    study = set_crowd(prolific, fixed)
    finished, client = enrolled(study, prolific_params())
    session = finish(finished)
    html = client.get(f"/r/{finished.token}/done/").content.decode()
    assert "cc=C1A2B3C4" in html and session.completion_code not in html
    out, out_client = enrolled(study, prolific_params(pid="5f3cOUT", session_id="X10"))
    sessions.start_session(out, device_pixel_ratio=1.0, viewport="1366x768")
    Session.objects.filter(rater=out).update(state=Session.State.SCREENED_OUT, ended_at=timezone.now(),
                                             end_reason="failed the training")
    html = out_client.get(f"/r/{out.token}/", follow=True).content.decode()
    assert "cc=OUTS9X8Y7" in html and "C1A2B3C4" not in html  # the fixture's screened_out_url: cc=OUT{code}


def test_an_expired_session_is_told_so_and_gets_no_code(prolific):
    """Catches a completion code for an expired session (it would be paid as finished)."""
    rater, client = enrolled(prolific, prolific_params())
    sessions.start_session(rater, device_pixel_ratio=1.0, viewport="1366x768")
    assert expiry.expire_stalled(prolific, now=timezone.now() + dt.timedelta(hours=2)) == 1
    html = client.get(f"/r/{rater.token}/", follow=True).content.decode()
    assert "Your session has expired" in html and "ratings you gave are kept" in html
    assert "return your submission on Prolific" in html
    for code in (sessions.completion_code(rater), sessions.completion_code(rater, "screened_out")):
        assert code not in html
    assert "http-equiv" not in html and "app.prolific.com" not in html


def test_a_lab_study_keeps_its_done_page(rating_study):
    from ratings import studies

    rater = studies.create_invitations(rating_study, 1)[0]
    session = finish(rater)
    page = Client().get(f"/r/{rater.token}/done/")
    assert "You have rated every image" in page.content.decode() and session.completion_code in page.content.decode()
    assert "frame-ancestors 'none'" in page["Content-Security-Policy"]


# -- quotas -----------------------------------------------------------------------------------------------
def test_the_target_of_completed_sessions_closes_enrolment_but_not_for_returning_workers(prolific):
    """Catches a target counted in enrolments (the study would close with every worker halfway, or
    never), and a returning worker refused at the door instead of sent to their exit."""
    set_design(prolific, raters=1)
    first, client = enrolled(prolific, prolific_params(pid="P1"))
    second, _ = enrolled(prolific, prolific_params(pid="P2"))  # admitted: nobody has completed yet
    finish(first)
    refused = arrive(Client(), prolific, prolific_params(pid="P3"))
    assert refused.status_code == 410 and "all the completed sessions it needs (1)" in refused.content.decode()
    assert "return the study on Prolific" in refused.content.decode()
    back = arrive(client, prolific, prolific_params(pid="P1"))
    assert back.status_code == 302 and back["Location"] == f"/r/{first.token}/"
    Study.objects.filter(pk=prolific.pk).update(state=Study.State.CLOSED)
    assert arrive(client, prolific, prolific_params(pid="P1"))["Location"] == f"/r/{first.token}/"
    assert Rater.objects.count() == 2 and Session.objects.get(rater=second).state == Session.State.CONSENT


def test_a_newcomer_is_admitted_after_an_in_flight_session_expires(prolific, settings):
    """Catches a cap that counts expired raters (no replacement could ever join), and enrolment that
    does not expire stalled sessions first (their items would stay taken)."""
    settings.SR_ENROLMENT_CAP_FACTOR = 1  # the cap is the target, 2
    first, _ = enrolled(prolific, prolific_params(pid="P1"))
    enrolled(prolific, prolific_params(pid="P2"))
    sessions.start_session(first, device_pixel_ratio=1.0, viewport="1366x768")
    late = arrive(Client(), prolific, prolific_params(pid="P3"))
    assert late.status_code == 410 and "has all the raters it needs" in late.content.decode()
    stalled = timezone.now() - dt.timedelta(minutes=prolific.crowd.stall_minutes + 1)
    Session.objects.filter(rater=first).update(last_active_at=stalled)  # the worker left an hour ago
    third, _ = enrolled(prolific, prolific_params(pid="P3"))
    assert Session.objects.get(rater=first).state == Session.State.EXPIRED  # expired by the enrolment
    assert enrolment.enrolment_cap(prolific) == 2
    assert arrive(Client(), prolific, prolific_params(pid="P4")).status_code == 410  # two can still finish


# -- run_study's link -----------------------------------------------------------------------------------
@pytest.mark.parametrize("table, line", [
    (PROLIFIC, "Prolific study URL (paste as the study's URL; Prolific fills in the {{%...%}} parts): "
               "https://lab.example/join/{token}/?PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}"
               "&SESSION_ID={{%SESSION_ID%}}"),
    (MTURK, "MTurk ExternalQuestion URL (the <ExternalURL> of the HIT's ExternalQuestion; MTurk appends "
            "assignmentId, hitId, workerId and turkSubmitTo; it must be https): https://lab.example/join/{token}/"),
    ({"platform": "generic", "worker_param": "uid", "completion_url": "https://panel.example/done?c={code}"},
     "Study URL (replace WORKER_ID by the platform's placeholder for the worker id): "
     "https://lab.example/join/{token}/?uid=WORKER_ID"),
])
def test_run_study_prints_the_url_to_paste_into_the_platform(rating_study, settings, table, line):
    """Catches the lab link (?worker_id=) printed for a crowd study, and a link on run_study's local
    address instead of SITE_URL, where workers arrive."""
    import io

    from ratings.management.commands.run_study import Command

    settings.SITE_URL = "https://lab.example"
    set_design(rating_study, raters=2)
    set_crowd(rating_study, table)
    out = io.StringIO()
    Command(stdout=out)._print_join_instructions(rating_study, "127.0.0.1:8000")
    printed = out.getvalue()
    assert line.replace("{token}", rating_study.open_enrolment_token) in printed.splitlines()
    assert "enrolment closes at 2 completed sessions (at most 6 live at once)" in printed
    assert "worker_id=WORKER_ID" not in printed
