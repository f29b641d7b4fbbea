"""Open enrolment: one rater per (normalised) worker id, POST only, capped, rate-limited per address,
and a returning worker's link only for the browser that enrolled them."""

from __future__ import annotations

import pytest
from django.test import Client

from ratings import enrolment
from ratings.models import Rater, Study

from .designs import set_design

pytestmark = pytest.mark.django_db


@pytest.fixture
def study(rating_study):
    set_design(rating_study, raters=3)
    return rating_study


def join_url(study) -> str:
    return f"/join/{study.open_enrolment_token}/"


def join(client, study, worker_id, address="10.0.0.1"):
    return client.post(join_url(study), {"worker_id": worker_id}, REMOTE_ADDR=address)


def test_one_rater_per_worker_id_normalised(study):
    a = enrolment.enrol(study, "W123")
    assert a.source == Rater.Source.OPEN and a.label == "w0001" and a.external_id == "w123"
    for same in (" W123 ", "w123", "Ｗ１２３", "W123\u00a0"):  # case, whitespace, NFKC (full width, no-break space)
        assert enrolment.enrol(study, same, returning_token=a.token) == a
    assert enrolment.normalise_worker_id("CaseWorker") == enrolment.normalise_worker_id("caseworker")
    assert enrolment.enrol(study, "W456").label == "w0002"
    with pytest.raises(enrolment.EnrolmentRefused):
        enrolment.enrol(study, "   ")
    assert Rater.objects.filter(study=study).count() == 2


def test_labels_continue_after_the_highest_even_after_a_deletion(study):
    assert enrolment.enrol(study, "W1").label == "w0001"
    assert enrolment.enrol(study, "W2").label == "w0002"
    Rater.objects.get(study=study, label="w0001").delete()
    third = enrolment.enrol(study, "W3")
    assert third.label == "w0003" and third.external_id == "w3"
    # A label taken by an imported rater is skipped too; the same worker id still gets its own rater.
    Rater.objects.create(study=study, label="w0007", source=Rater.Source.IMPORTED)
    assert enrolment.enrol(study, "W4").label == "w0008"
    assert enrolment.enrol(study, "W3", returning_token=third.token) == third


def test_a_get_shows_the_form_filled_in_and_creates_nothing(client, study):
    """Catches enrolment on GET (a state change without CSRF protection)."""
    page = client.get(join_url(study) + "?worker_id=A1B2")
    assert page.status_code == 200 and b"worker id" in page.content and b'value="A1B2"' in page.content
    assert not Rater.objects.filter(study=study).exists()
    assert client.get("/join/wrong-token/?worker_id=x").status_code == 404


def test_the_post_enrols_and_the_same_browser_comes_back_to_its_link(client, study):
    response = join(client, study, "A1B2")
    rater = Rater.objects.get(study=study, external_id="a1b2")
    assert response.status_code == 302 and response["Location"] == f"/r/{rater.token}/"
    again = join(client, study, " a1b2 ")  # the same browser (it holds the cookie)
    assert again.status_code == 302 and again["Location"] == f"/r/{rater.token}/"
    assert Rater.objects.filter(study=study).count() == 1


def test_a_known_worker_id_from_another_browser_gets_nothing_of_the_victims(client, study):
    """Catches handing out the rater link (and so the completion code) to anyone typing a worker id."""
    join(client, study, "Victim-42")
    victim = Rater.objects.get(study=study, external_id="victim-42")
    attacker = Client()
    for typed in ("Victim-42", "victim-42", " VICTIM-42 "):
        response = join(attacker, study, typed, address="10.9.9.9")
        assert response.status_code == 409
        page = response.content.decode()
        assert victim.token not in page and victim.token not in response.get("Location", "")
        assert "another browser" in page
        assert not any(victim.token in c.value for c in response.cookies.values())
    forged = Client()
    forged.cookies[enrolment.EnrolmentCookie().name(study)] = victim.token  # unsigned: refused too
    assert join(forged, study, "Victim-42", address="10.9.9.8").status_code == 409
    assert Rater.objects.filter(study=study).count() == 1


def test_300_attempts_from_one_address_create_at_most_the_cap(client, study, settings):
    """Catches unlimited enrolment: 500 requests made 500 raters for a study that wanted 3."""
    settings.SR_ENROLMENT_RATE = (1000, 600)  # the cap alone (the rate limit is tested below)
    cap = enrolment.enrolment_cap(study)
    assert cap == 3 * study.raters_target
    statuses = [join(client, study, f"bot{k}").status_code for k in range(300)]
    assert Rater.objects.filter(study=study, source=Rater.Source.OPEN).count() == cap
    assert statuses.count(302) == cap and set(statuses[cap:]) == {410}
    page = join(client, study, "late-comer").content.decode()
    assert "has all the raters it needs" in page


def test_one_address_is_rate_limited_and_others_are_not(study, settings):
    settings.SR_ENROLMENT_RATE = (5, 600)
    set_design(study, raters=100)
    statuses = [join(Client(), study, f"bot{k}", address="10.1.1.1").status_code for k in range(20)]
    assert statuses[:5] == [302] * 5 and set(statuses[5:]) == {429}
    refused = join(Client(), study, "one-more", address="10.1.1.1")
    assert refused.status_code == 429 and b"Too many attempts" in refused.content
    assert join(Client(), study, "elsewhere", address="10.2.2.2").status_code == 302
    assert Rater.objects.filter(study=study).count() == 6


def test_a_study_without_a_target_or_closed_takes_no_open_enrolment(client, rating_study):
    response = join(client, rating_study, "W1")
    assert response.status_code == 410 and not Rater.objects.exists()
    set_design(rating_study, raters=2)
    Study.objects.filter(pk=rating_study.pk).update(state=Study.State.CLOSED)
    assert b"closed" in join(client, rating_study, "W1").content


def test_a_closed_study_refuses_enrolment_with_room_under_its_cap(study):
    """Catches enrolment into a closed study (the check in ``enrolment.enrol``), with the cap far from
    reached, so only the closed-study rule can refuse."""
    assert enrolment.enrolment_cap(study) > 0
    Study.objects.filter(pk=study.pk).update(state=Study.State.CLOSED)
    study.refresh_from_db()
    with pytest.raises(enrolment.EnrolmentRefused, match="closed") as info:
        enrolment.enrol(study, "W-late")
    assert info.value.status == 410
    assert not Rater.objects.filter(study=study).exists()


def test_label_numbers_come_from_the_one_labels_module(study):
    """Catches a second copy of the label rule in enrolment (the lazy import of ``studies`` it replaced)
    and a rule that counts labels of another prefix or with trailing characters."""
    from ratings import labels

    assert enrolment.next_label_number is labels.next_label_number
    for label in ("w0004", "w12x", "wx", "r0009"):
        Rater.objects.create(study=study, label=label, source=Rater.Source.IMPORTED)
    assert labels.next_label_number(study, "w") == 5
    assert labels.next_label_number(study, "r") == 10
    assert labels.next_label_number(study, "q") == 1
