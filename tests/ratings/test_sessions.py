"""Rater sessions: the stored order, and every rating stored exactly once whatever the client sends."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from analysis._frames import test_rows as mos_rows  # not "test_*": pytest would collect it
from ratings import dispatch, session_order, sessions, studies
from ratings.balance import counted_items
from ratings.export import ratings_frame
from ratings.forms import RatingForm
from ratings.models import Rater, Rating, Session, SessionItem, Stimulus, Study
from ratings.pair_steps import PairAnswer, PairStep
from ratings.study_file import parse_study_file

from .conftest import ready_study
from .designs import set_design
from .qualified import answer, qualified_study
from .qualified import started as started_on_desktop

pytestmark = pytest.mark.django_db


def started(study, label=None):
    rater = studies.create_invitations(study, 1)[0] if label is None else Rater.objects.get(study=study, label=label)
    sessions.start_session(rater, device_pixel_ratio=1.0, viewport="1366x768")
    rater.refresh_from_db()
    return rater


def skip_calibration(rater):
    session = Session.objects.get(rater=rater)
    while session.state == Session.State.CALIBRATION:
        session = sessions.advance_calibration(rater, session.position)
    return session


def rate_current(rater, score=3, response_ms=234):
    session = Session.objects.get(rater=rater)
    item = sessions.current_item(session)
    return sessions.record_rating(rater, sessions.item_token(item), score, response_ms)


# -- the stored order ------------------------------------------------------------------------------
def test_order_calibration_first_then_tests_repeats_and_gold(rating_study):
    rater = started(rating_study)
    items = list(SessionItem.objects.filter(session__rater=rater).select_related("stimulus__condition", "stimulus__image__dataset"))
    kinds = [i.kind for i in items]
    assert kinds[:4] == ["calibration"] * 4  # 2 images x (NN told 1, HR told 5)
    assert [i.expected_score for i in items[:4]] == [1, 5, 1, 5]
    assert Counter(kinds) == {"calibration": 4, "test": 15, "repeat": 2, "gold": 2}
    tests = [i.stimulus_id for i in items if i.kind == "test"]
    assert len(set(tests)) == 15  # every Set5 stimulus once (assignment "all")
    for item in items:
        if item.kind == "repeat":
            first = next(i for i in items if i.stimulus_id == item.stimulus_id and i.kind == "test")
            assert first.position < item.position - 1
            assert (item.stimulus.condition.name, item.stimulus.image.dataset.name) == ("bicubic", "Set5")
        if item.kind == "gold":
            assert item.stimulus.image.dataset.role == "calibration"
            assert item.expected_score == (1 if item.stimulus.condition.name == "nearest" else 5)


def test_order_is_random_per_rater_and_reproducible(rating_study):
    a, b = started(rating_study), started(rating_study)

    def order(rater):
        return [i.stimulus_id for i in SessionItem.objects.filter(session__rater=rater, kind="test")]

    assert order(a) != order(b)
    assert sorted(order(a)) == sorted(order(b))
    # Drawing again from the same seed and label gives the same order.
    session = Session.objects.get(rater=a)
    first = order(a)
    SessionItem.objects.filter(session=session).delete()
    session_order.build_items(session)
    assert order(a) == first


def test_consent_twice_builds_once(rating_study):
    rater = started(rating_study)
    n = SessionItem.objects.filter(session__rater=rater).count()
    sessions.start_session(rater)
    assert SessionItem.objects.filter(session__rater=rater).count() == n


def test_study_not_ready_refuses_to_start(small_config, media_root):
    study = studies.create_or_resume_study(small_config).study  # stimuli not made
    rater = studies.create_invitations(study, 1)[0]
    with pytest.raises(sessions.RatingRefused, match="still being made"):
        sessions.start_session(rater)


def test_balanced_assignment_reaches_the_target(datasets_root, media_root, weights_dir):
    text = """name = "bal"
seed = 11
datasets = ["Set5"]
methods = ["nearest", "bicubic", "hr"]
[rating]
calibration_images = 0
assignment = "balanced"
ratings_per_stimulus = 2
items_per_rater = 6
"""
    study = studies.create_or_resume_study(parse_study_file(text, "b.toml", datasets_root=datasets_root)).study
    dispatch.enqueue_pending(study)
    for _ in range(5):  # 5 raters x 6 items = 30 = 15 stimuli x 2
        started(study)
    counts = Counter(SessionItem.objects.filter(session__rater__study=study, kind="test").values_list("stimulus_id", flat=True))
    assert len(counts) == 15 and set(counts.values()) == {2}
    for rater in study.raters.all():
        assert SessionItem.objects.filter(session__rater=rater).count() == 6


# -- recording ratings -----------------------------------------------------------------------------
def test_a_whole_session(rating_study):
    rater = started(rating_study)
    session = skip_calibration(rater)
    assert session.state == Session.State.RATING
    n = 0
    while session.state != Session.State.COMPLETE:
        result = rate_current(rater, score=1 + n % 5)
        assert result.stored
        session = result.session
        n += 1
    assert n == 19 and Rating.objects.filter(rater=rater).count() == 19
    assert session.completion_code == _independent_completion_code(rater)  # computed here, not by sessions
    # The browser's times are kept (each within what the server could have seen).
    assert set(Rating.objects.filter(rater=rater).values_list("response_ms", flat=True)) == {234}


@pytest.mark.parametrize("score", [0, 6, -1, "x", "", None, "3.5"])
def test_scores_outside_1_to_5_are_refused(rating_study, score):
    rater = started(rating_study)
    skip_calibration(rater)
    item = sessions.current_item(rater.session)
    with pytest.raises(sessions.RatingRefused) as info:
        sessions.record_rating(rater, sessions.item_token(item), score)
    assert info.value.status == 400 and "1 to 5" in info.value.message
    assert Rating.objects.count() == 0


def test_replayed_or_double_clicked_submission_is_stored_once(rating_study):
    rater = started(rating_study)
    skip_calibration(rater)
    item = sessions.current_item(Session.objects.get(rater=rater))
    token = sessions.item_token(item)
    assert sessions.record_rating(rater, token, 4).stored
    replay = sessions.record_rating(rater, token, 4)
    assert not replay.stored
    assert Rating.objects.filter(item=item).count() == 1
    # The same item with another score (a stale tab) keeps the first answer.
    with pytest.raises(sessions.RatingRefused, match="first answer was kept") as info:
        sessions.record_rating(rater, token, 2)
    assert info.value.status == 409
    assert Rating.objects.get(item=item).score == 4


def test_a_stale_page_for_a_later_item_is_refused(rating_study):
    rater = started(rating_study)
    session = skip_calibration(rater)
    later = SessionItem.objects.get(session=session, position=session.position + 3)
    with pytest.raises(sessions.RatingRefused, match="out of date"):
        sessions.record_rating(rater, sessions.item_token(later), 3)
    assert Rating.objects.count() == 0


def test_another_raters_item_or_forged_form_is_refused(rating_study):
    alice, bob = started(rating_study), started(rating_study)
    skip_calibration(alice)
    skip_calibration(bob)
    alice_item = sessions.current_item(Session.objects.get(rater=alice))
    with pytest.raises(sessions.RatingRefused, match="another rater") as info:
        sessions.record_rating(bob, sessions.item_token(alice_item), 3)
    assert info.value.status == 403
    with pytest.raises(sessions.RatingRefused, match="damaged or forged"):
        sessions.record_rating(bob, sessions.item_token(alice_item)[:-3] + "abc", 3)
    # A validly signed reference to a stimulus that is not in the session (forged public id).
    bob_session = Session.objects.get(rater=bob)
    forged = sessions.item_tokens.make_token(
        SessionItem(session=bob_session, position=bob_session.position, stimulus=Stimulus(public_id="not-a-stimulus")))
    with pytest.raises(sessions.RatingRefused, match="not in your assignment"):
        sessions.record_rating(bob, forged, 3)
    assert Rating.objects.count() == 0


def test_calibration_items_are_not_rated(rating_study):
    rater = started(rating_study)
    item = sessions.current_item(Session.objects.get(rater=rater))
    assert item.kind == "calibration"
    with pytest.raises(sessions.RatingRefused, match="Calibration images are not rated"):
        sessions.record_rating(rater, sessions.item_token(item), 1)


def test_a_finished_session_takes_nothing_more(rating_study):
    rater = started(rating_study)
    session = skip_calibration(rater)
    last = None
    while session.state != Session.State.COMPLETE:
        last = sessions.current_item(session)
        session = rate_current(rater).session
    assert not sessions.record_rating(rater, sessions.item_token(last), 3).stored  # replay of the last one
    with pytest.raises(sessions.RatingRefused, match="first answer was kept"):
        sessions.record_rating(rater, sessions.item_token(last), 5)
    assert Rating.objects.filter(rater=rater).count() == 19


def test_breaks(rating_study):
    set_design(rating_study, break_every=5)
    rater = started(rating_study)
    session = skip_calibration(rater)
    due = []
    for k in range(12):
        session = rate_current(rater).session
        due.append(sessions.break_due(session))
    assert [k + 1 for k, d in enumerate(due) if d] == [5, 10]


@pytest.mark.django_db(transaction=True)
def test_concurrent_submissions_of_the_same_item_store_one_rating(rating_study):
    rater = started(rating_study)
    skip_calibration(rater)
    token = sessions.item_token(sessions.current_item(Session.objects.get(rater=rater)))
    results, errors = [], []
    barrier = threading.Barrier(4)

    def submit(score):
        try:
            barrier.wait()
            results.append(sessions.record_rating(rater, token, score).stored)
        except sessions.RatingRefused as exc:
            errors.append(exc.status)
        finally:
            connection.close()

    threads = [threading.Thread(target=submit, args=(s,)) for s in (4, 4, 4, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert Rating.objects.filter(rater=rater).count() == 1
    stored_score = Rating.objects.get(rater=rater).score
    assert results.count(True) == 1
    assert len(results) + len(errors) == 4
    assert all(status == 409 for status in errors)
    assert Session.objects.get(rater=rater).position == 5  # moved on exactly once
    if stored_score == 4:
        assert results.count(False) == 2 and errors == [409]


def test_a_closed_study_takes_no_more_ratings(rating_study):
    rater = started(rating_study)
    skip_calibration(rater)
    token = sessions.item_token(sessions.current_item(Session.objects.get(rater=rater)))
    Study.objects.filter(pk=rating_study.pk).update(state=Study.State.CLOSED)
    with pytest.raises(sessions.RatingRefused, match="study is closed") as info:
        sessions.record_rating(rater, token, 4)  # the rater object still holds the study as it was
    assert info.value.status == 410
    assert Rating.objects.count() == 0
    assert Session.objects.get(rater=rater).position == 4  # did not move on


def test_a_closed_study_refuses_consent_as_closed(rating_study):
    rater = studies.create_invitations(rating_study, 1)[0]
    Study.objects.filter(pk=rating_study.pk).update(state=Study.State.CLOSED)
    with pytest.raises(sessions.RatingRefused, match="study is closed") as info:
        sessions.start_session(rater)
    assert info.value.status == 410


def _response_ms(item_pk):
    return Rating.objects.get(item_id=item_pk).response_ms


def test_response_times_count_from_when_each_item_was_shown(rating_study):
    """Items after the first reach the browser in the previous rating's answer (no page load): the
    server notes when it sent each one, so a time it measures or bounds is that item's alone."""
    rater = started(rating_study)
    skip_calibration(rater)
    first = sessions.current_item(Session.objects.get(rater=rater))  # the page load shows it
    time.sleep(0.6)
    result = sessions.record_rating(rater, sessions.item_token(first), 3)  # no JavaScript: no browser time
    assert 600 <= _response_ms(first.pk) < 3000
    second = result.step.item
    assert second.shown_at is not None and SessionItem.objects.get(pk=second.pk).shown_at is not None
    time.sleep(0.2)
    result = sessions.record_rating(rater, sessions.item_token(result.step.item), 4)
    assert 200 <= _response_ms(second.pk) < 800  # not the first item's 600 ms as well
    # A browser whose timer still runs from an older item cannot claim more than the server saw.
    third = result.step.item
    time.sleep(0.1)
    sessions.record_rating(rater, sessions.item_token(result.step.item), 2, 600_000)
    assert 100 <= _response_ms(third.pk) < 100 + sessions.RESPONSE_SLACK_MS + 700


def test_no_shown_time_is_set_during_a_break(rating_study):
    set_design(rating_study, break_every=1)
    rater = started(rating_study)
    skip_calibration(rater)
    result = rate_current(rater)
    assert sessions.break_due(result.session)
    nxt = SessionItem.objects.get(session__rater=rater, position=result.session.position)
    assert nxt.shown_at is None  # the break may last long; the item is shown when the rater comes back
    shown = sessions.current_step(Session.objects.get(rater=rater)).item
    assert shown.pk == nxt.pk and SessionItem.objects.get(pk=nxt.pk).shown_at is not None


def test_response_times_over_an_hour_are_stored_as_missing(rating_study):
    rater = started(rating_study)
    skip_calibration(rater)
    item = sessions.current_item(Session.objects.get(rater=rater))
    SessionItem.objects.filter(pk=item.pk).update(shown_at=timezone.now() - timedelta(hours=2))
    sessions.record_rating(rater, sessions.item_token(item), 3, 2 * 3600 * 1000)
    assert _response_ms(item.pk) is None  # a tab left open says nothing about the image


@pytest.mark.parametrize("sent", ["-5", "-0.5", "inf", "nan", "-inf", "abc"])
def test_a_broken_browser_response_time_is_stored_as_missing(rating_study, sent):
    """Catches max(0, ms): a negative time (a clock that went back) was stored as 0 ms."""
    rater = started(rating_study)
    skip_calibration(rater)
    item = sessions.current_item(Session.objects.get(rater=rater))
    form = RatingForm({"item": sessions.item_token(item), "score": "3", "response_ms": sent})
    assert form.is_valid()  # a broken time never refuses the rating
    data = form.cleaned_data
    assert sessions.record_rating(rater, data["item"], data["score"], data["response_ms"]).stored
    assert _response_ms(item.pk) is None


def test_the_item_token_names_no_database_id(rating_study):
    """Catches tokens whose (readable, only signed) payload held the rater's sequential id."""
    from django.core import signing

    rater = started(rating_study)
    skip_calibration(rater)
    item = sessions.current_item(Session.objects.get(rater=rater))
    token = sessions.item_token(item)
    payload = signing.loads(token, salt=sessions.ItemTokenGenerator.salt)
    # A keyed hash of the rater's secret token, the position in the session, the opaque stimulus id.
    assert payload[1:] == [item.position, item.stimulus.public_id]
    assert isinstance(payload[0], str) and len(payload[0]) == 16 and rater.token not in token


# -- pinned before the redesign (issue 16 item 0): each test names the mutant it kills ------------
def test_no_break_is_offered_before_the_first_rating(rating_study):
    """Catches ``rated >= 0`` (or no ``rated > 0``): a break offered during calibration or before any rating."""
    set_design(rating_study, break_every=1)  # every position is a multiple of 1
    rater = started(rating_study)
    session = Session.objects.get(rater=rater)
    while session.state == Session.State.CALIBRATION:
        assert not sessions.break_due(session)
        session = sessions.advance_calibration(rater, session.position)
    assert session.state == Session.State.RATING and not sessions.break_due(session)
    assert sessions.break_due(rate_current(rater).session)  # after the first rating it is offered


def test_a_repeat_is_never_shown_right_after_its_first_showing(rating_study):
    """Catches slots ``p >= first + 1``: that mutant places a repeat right after its first showing with
    probability 1/15 per repeat, so with 40 raters x 2 repeats with 1 - (14/15)^80 > 0.99; here, never."""
    raters = studies.create_invitations(rating_study, 40)
    for rater in raters:
        session_order.build_items(Session.objects.get(rater=rater))
    gaps = []
    for rater in raters:
        items = list(SessionItem.objects.filter(session__rater=rater).order_by("position"))
        for item in items:
            if item.kind == "repeat":
                first = next(i for i in items if i.stimulus_id == item.stimulus_id and i.kind == "test")
                gaps.append(item.position - first.position)
    assert len(gaps) == 80 and min(gaps) >= 2


def test_gold_items_alternate_nn_and_hr_on_images_not_used_for_calibration(rating_study):
    """Catches every gold item NN (never HR), and gold images drawn from the calibration images."""
    rater = started(rating_study)
    items = list(SessionItem.objects.filter(session__rater=rater).select_related("stimulus__condition"))
    gold = [i for i in items if i.kind == "gold"]
    assert sorted((i.stimulus.condition.name, i.expected_score) for i in gold) == [("hr", 5), ("nearest", 1)]
    calibration_images = {i.stimulus.image_id for i in items if i.kind == "calibration"}
    gold_images = {i.stimulus.image_id for i in gold}
    assert len(calibration_images) == 2 and len(gold_images) == 2
    assert not calibration_images & gold_images


def _independent_completion_code(rater) -> str:
    """The completion code computed here, from its definition, not by calling ``sessions``."""
    import hashlib
    import hmac

    from django.conf import settings

    message = f"complete:{rater.study_id}:{rater.pk}".encode()
    return hmac.new(settings.SECRET_KEY.encode(), message, hashlib.sha256).hexdigest()[:10].upper()


def test_the_completion_code_is_the_hmac_of_study_and_rater(rating_study, settings):
    """Catches the rater left out of the HMAC (every rater of a study would share one code)."""
    a, b = studies.create_invitations(rating_study, 2)
    assert sessions.completion_code(a) == _independent_completion_code(a)
    assert sessions.completion_code(b) == _independent_completion_code(b)
    assert sessions.completion_code(a) != sessions.completion_code(b)
    code = sessions.completion_code(a)
    settings.SECRET_KEY = "another-secret-" + "x" * 40
    assert sessions.completion_code(a) != code  # unguessable without the secret


@pytest.mark.django_db(transaction=True)
def test_a_rating_waits_for_the_session_row_lock(rating_study):
    """Catches ``_locked_session`` without ``select_for_update``: a rating read the session while another
    request held it, stored the rating for an item the holder had moved past, and then moved on again.

    Only PostgreSQL shows it: on SQLite every transaction takes the database's write lock at BEGIN
    (IMMEDIATE), so the second request waits whether or not the row is locked.
    """
    from django.db import transaction
    from django.db.models import F

    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises whole transactions (BEGIN IMMEDIATE), hiding a dropped row lock: "
                    "run with DATABASE_URL=postgres://...")
    rater = started(rating_study)
    skip_calibration(rater)
    token = sessions.item_token(sessions.current_item(Session.objects.get(rater=rater)))
    outcome = {}

    def submit():
        try:
            outcome["result"] = sessions.record_rating(rater, token, 4)
        except sessions.RatingRefused as exc:
            outcome["refused"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=submit)
    with transaction.atomic():
        Session.objects.select_for_update().get(rater=rater)  # another request holds the session ...
        thread.start()
        thread.join(1.0)
        assert thread.is_alive()  # ... so the rating waits for it
        Session.objects.filter(rater=rater).update(position=F("position") + 1)  # ... which moves it on
    thread.join(30)
    assert not thread.is_alive()
    assert "refused" in outcome and "out of date" in outcome["refused"].message
    assert Rating.objects.filter(rater=rater).count() == 0
    assert Session.objects.get(rater=rater).position == 5


# -- the rater flow in one layer (issue 16 item 4) -------------------------------------------------
def test_every_item_kind_has_one_step_kind_whose_state_and_page_agree():
    """Catches an item kind without a step kind (the flow would raise KeyError mid-session) and a kind
    whose session state sends the rater to another kind's page."""
    assert set(sessions.STEP_KINDS) == set(SessionItem.Kind.values)
    pages = {(Session.State.CALIBRATION, False): "ratings:calibrate", (Session.State.RATING, False): "ratings:rate",
             (Session.State.CALIBRATION, True): "ratings:pair", (Session.State.RATING, True): "ratings:pair"}
    for kind in sessions.STEP_KINDS.values():
        assert pages[kind.state, isinstance(kind, PairStep)] == kind.page


def test_the_next_page_after_calibration_a_break_and_the_last_item(rating_study):
    """The one "where next" decision. Catches: the last calibration item not leading to rating, a break
    never offered after the answer that makes it due (or offered again when the rater comes back from
    it), the end without the completion page and code, and a step before consent sent past consent."""
    set_design(rating_study, break_every=5)
    rater = studies.create_invitations(rating_study, 1)[0]
    assert sessions.current_step(Session.objects.get(rater=rater), mark_shown=False).next_page() == "ratings:consent"
    rater = started(rating_study, rater.label)
    session = Session.objects.get(rater=rater)
    pages = []
    while session.state == Session.State.CALIBRATION:
        pages.append(sessions.current_step(session, mark_shown=False).next_page())
        session = sessions.advance_calibration(rater, session.position)
    assert pages == ["ratings:calibrate"] * 4
    step = sessions.current_step(session, mark_shown=False)
    assert step.next_page() == "ratings:rate" and (step.number, step.done, step.total) == (1, 0, 19)
    after = [rate_current(rater).step for _ in range(19)]
    assert [k + 1 for k, s in enumerate(after) if s.next_page() == "ratings:break"] == [5, 10, 15]
    assert all(s.next_page() == "ratings:rate" for s in after[:-1] if not s.on_break)
    resumed = sessions.current_step(after[4].session, mark_shown=False)  # the session as the 5th answer left it
    assert resumed.next_page() == "ratings:rate" and resumed.item.pk == after[4].item.pk  # back from the break
    assert after[-1].next_page() == "ratings:done" and after[-1].item is None
    assert after[-1].session.completion_code == _independent_completion_code(rater)
    assert after[-1].url() == f"/r/{rater.token}/done/"


def test_coming_back_from_a_break_shows_the_item_on_the_rating_page(rating_study):
    """Catches ``on_break`` read from the session alone (break_due): the rating page would send the
    rater back to the break page forever."""
    set_design(rating_study, break_every=1)
    rater = started(rating_study)
    skip_calibration(rater)
    result = rate_current(rater)
    assert result.step.next_page() == "ratings:break"
    step = sessions.current_step(Session.objects.get(rater=rater))
    assert step.next_page() == "ratings:rate" and step.item.pk == result.step.item.pk
    replay = sessions.record_rating(rater, sessions.item_token(Rating.objects.get(rater=rater).item), 3)
    assert not replay.stored and replay.step.next_page() == "ratings:break"  # a replayed answer: the same answer


def test_an_item_token_is_bound_to_its_rater_its_position_and_its_salt(rating_study):
    """Catches a token checked without its rater, a position or stimulus taken from the request instead
    of the signed payload, and a salt shared with another signed value (the enrolment cookie's)."""
    from django.core import signing

    alice, bob = started(rating_study), started(rating_study)
    item = sessions.current_item(Session.objects.get(rater=alice))
    token = sessions.item_tokens.make_token(item)
    assert sessions.item_tokens.check_token(alice, token) == (item.position, item.stimulus.public_id)
    with pytest.raises(sessions.RatingRefused) as info:
        sessions.item_tokens.check_token(bob, token)
    assert info.value.status == 403
    payload = signing.loads(token, salt=sessions.ItemTokenGenerator.salt)
    for salt in ("ratings.enrolment", ""):
        with pytest.raises(sessions.RatingRefused) as info:
            sessions.item_tokens.check_token(alice, signing.dumps(payload, salt=salt))
        assert info.value.status == 400
    moved = token.replace(token.split(":")[0], signing.dumps([payload[0], payload[1] + 1, payload[2]],
                                                             salt=sessions.ItemTokenGenerator.salt).split(":")[0])
    with pytest.raises(sessions.RatingRefused, match="damaged or forged"):
        sessions.item_tokens.check_token(alice, moved)  # another position under the old signature


def test_a_new_kind_of_step_plugs_into_the_flow_through_the_registry(rating_study, monkeypatch):
    """The extension point issue 17's paired steps use: gold items answered "up"/"down" by a StepKind
    registered in STEP_KINDS, with the flow untouched. Catches the flow deciding anything by the item's
    kind outside the registry (the answer check, the stored-answer replay rule, the payload)."""

    class Thumbs(sessions.ScoredStep):
        answers = {"up": 5, "down": 1}

        def payload(self, step):
            return {**super().payload(step), "choices": sorted(self.answers)}

        def check_answer(self, answer):
            if answer not in self.answers:
                raise sessions.RatingRefused("Choose up or down.", 400)

        def stored_answer(self, item):
            score = super().stored_answer(item)
            return None if score is None else {v: k for k, v in self.answers.items()}[score]

        def store(self, item, answer, response_ms):
            super().store(item, self.answers[answer], response_ms)

    monkeypatch.setitem(sessions.STEP_KINDS, SessionItem.Kind.GOLD, Thumbs())
    rater = started(rating_study)
    session = skip_calibration(rater)
    answered = []
    while session.state != Session.State.COMPLETE:
        step = sessions.current_step(session)
        gold = step.item.kind == SessionItem.Kind.GOLD
        assert ("choices" in step.payload()) == gold
        if gold:
            with pytest.raises(sessions.RatingRefused, match="up or down"):
                sessions.record_rating(rater, sessions.item_token(step.item), 3)
        answer = "up" if gold else 3
        session = sessions.record_rating(rater, sessions.item_token(step.item), answer).session
        if gold:
            assert not sessions.record_rating(rater, sessions.item_token(step.item), "up").stored  # a replay
            with pytest.raises(sessions.RatingRefused, match="first answer was kept"):
                sessions.record_rating(rater, sessions.item_token(step.item), "down")
        answered.append(gold)
    assert answered.count(True) == 2
    assert sorted(Rating.objects.filter(rater=rater, item__kind="gold").values_list("score", flat=True)) == [5, 5]
    assert Rating.objects.filter(rater=rater).count() == 19


# -- qualification and attention (issue 18) ------------------------------------------------------------
def _close(expected: int) -> int:
    """A training answer one point off the expected score (within one: it counts as close)."""
    return 2 if expected == 1 else 4


FAR = 3  # two points from both expected training scores (1 and 5): never close


def _training_items(rater):
    return list(SessionItem.objects.filter(session__rater=rater, kind=SessionItem.Kind.TRAINING)
                .select_related("stimulus__condition", "stimulus__image").order_by("position"))


def test_training_items_follow_calibration_are_told_and_stay_out_of_the_mos(datasets_root, media_root):
    """Catches training items missing, placed among the scored items, drawn on calibration or gold
    images, not alternating NN (1) and HR (5), in one order for every worker, counted as scored items
    (the progress figures, the breaks), told nothing or the wrong score, or entering the MOS."""
    study = qualified_study(datasets_root)
    raters = [started_on_desktop(study) for _ in range(3)]
    rater = raters[0]
    items = list(SessionItem.objects.filter(session__rater=rater).select_related("stimulus__condition", "stimulus__image")
                 .order_by("position"))
    kinds = [i.kind for i in items]
    assert kinds[:6] == ["calibration"] * 2 + ["training"] * 4
    assert Counter(kinds[6:]) == {"test": 10, "gold": 1}
    training = _training_items(rater)
    assert sorted((i.stimulus.condition.name, i.expected_score) for i in training) == [
        ("hr", 5), ("hr", 5), ("nearest", 1), ("nearest", 1)]
    used = {i.stimulus.image_id for i in items if i.kind in ("calibration", "gold")}
    assert len({i.stimulus.image_id for i in training} | used) == 4 + len(used)  # four images of their own
    assert all(i.stimulus.image.dataset.role == "calibration" for i in training)
    orders = {tuple(i.stimulus.image_id for i in _training_items(r)) for r in raters}
    assert len(orders) > 1  # drawn per worker
    session = Session.objects.get(rater=rater)
    assert (session.calibration_items, session.planned_scored_items) == (6, 11)

    session = skip_calibration(rater)
    step = sessions.current_step(session, mark_shown=False)
    assert step.next_page() == "ratings:rate" and step.payload()["training"] is True
    assert (step.number, step.total, step.done) == (1, 4, 0)
    told = []
    for k, item in enumerate(training):
        result = answer(rater, _close(item.expected_score) if k == 0 else item.expected_score)
        told.append(result.feedback)
    first = training[0].expected_score
    assert told[0] == ("Expected: 1 (Bad); you answered 2 (Poor)." if first == 1
                       else "Expected: 5 (Excellent); you answered 4 (Good).")
    assert told[1] == f"Expected: {training[1].expected_score} ({sessions.SCORE_LABELS[training[1].expected_score]}); " \
                      f"you answered {training[1].expected_score} ({sessions.SCORE_LABELS[training[1].expected_score]})."
    assert result.session.state == Session.State.RATING  # passed (4 of 4 close)
    step = result.step
    assert (step.number, step.total, step.done) == (1, 11, 0) and "training" not in step.payload()
    assert answer(rater, 4).feedback == ""  # scored items are told nothing

    frame = ratings_frame(study)  # training answers are stored, and kept out of the results' frame
    assert Rating.objects.filter(rater=rater, item__kind="training").count() == 4
    assert (frame["kind"] == "training").sum() == 0
    assert len(mos_rows(frame)) == Rating.objects.filter(rater=rater, item__kind="test").count() <= 1


def test_the_training_pass_rule_screens_out_one_below_pass_within_one(datasets_root, media_root):
    """pass_within_one = 3 of 4: three close answers pass, two are screened out. Catches an off-by-one,
    the rule applied before the last training answer, the last answer not stored, the session not
    ended (state, time, reason, the screened-out code), further answers taken, and the screened-out
    worker's unrated items still counted for top-up."""
    study = qualified_study(datasets_root)
    passer, failer = started_on_desktop(study), started_on_desktop(study)
    for rater, close in ((passer, 3), (failer, 2)):
        for k, item in enumerate(_training_items(rater)):
            result = answer(rater, _close(item.expected_score) if k < close else FAR)
            if k < 3:
                assert result.session.state == Session.State.RATING  # nothing decided before the last
    assert Session.objects.get(rater=passer).state == Session.State.RATING
    session = Session.objects.get(rater=failer)
    assert session.state == Session.State.SCREENED_OUT and session.is_over
    assert session.end_reason == ("qualification: 2 of 4 training answers within one point of the expected score, "
                                  "3 needed")
    assert session.ended_at is not None and session.completed_at is None
    assert session.completion_code == sessions.completion_code(failer, "screened_out") != sessions.completion_code(failer)
    assert result.stored and result.feedback.startswith("Expected:")  # the last answer is told and kept
    assert result.step.next_page() == "ratings:done"
    assert Rating.objects.filter(rater=failer, item__kind="training").count() == 4
    following = SessionItem.objects.get(session=session, position=session.position)
    with pytest.raises(sessions.RatingRefused) as refused:
        sessions.record_rating(failer, sessions.item_token(following), 4)
    assert refused.value.status == 410 and refused.value.message == sessions.ENDED_MESSAGE
    # the passer's 10 test items wait in a live session and count; the failer's 10 go back to the pool
    assert SessionItem.objects.filter(counted_items(), session__rater__study=study).count() == 10


def _pass_training(rater, last=FAR):
    """Pass the training (three answers exact, the last ``last``)."""
    training = _training_items(rater)
    for item in training[:-1]:
        answer(rater, item.expected_score)
    return answer(rater, last)


def test_attention_checks_as_answers_arrive(datasets_root, media_root):
    """straight_line = 4: the fourth same score in a row ends the session, the third does not, the
    training answers do not count, and the answer that ends it is kept; with end_session = false the
    same answers are stored and the session goes on; too fast ends it on the median of the window.
    Catches an off-by-one, warm-up answers in the run, the triggering rating dropped or rolled back,
    a flag-only study ended, and response times not read."""
    study = qualified_study(datasets_root)
    rater = started_on_desktop(study)
    _pass_training(rater, last=3)  # the training's last answer is a 3: not part of the run
    for n in range(1, 4):
        result = answer(rater, 3)
        assert result.session.state == Session.State.RATING, n
    result = answer(rater, 3)
    session = Session.objects.get(rater=rater)
    assert session.state == Session.State.SCREENED_OUT
    assert session.end_reason == "attention: the same answer (3) 4 times in a row"
    assert result.stored and result.step.next_page() == "ratings:done"
    scored = Rating.objects.filter(rater=rater).exclude(item__kind="training")
    assert list(scored.order_by("item__position").values_list("score", flat=True)) == [3, 3, 3, 3]
    with pytest.raises(sessions.RatingRefused) as refused:
        answer(rater, 4)
    assert refused.value.status == 410

    config = Study.objects.get(pk=study.pk).config
    config["attention"]["end_session"] = False
    Study.objects.filter(pk=study.pk).update(config=config)
    study.refresh_from_db()
    flagged_only = started_on_desktop(study)
    _pass_training(flagged_only)
    for _ in range(6):
        assert answer(flagged_only, 3).session.state == Session.State.RATING
    assert Rating.objects.filter(rater=flagged_only).exclude(item__kind="training").count() == 6

    config.update(attention={"straight_line": 0, "too_fast_ms": 600, "window": 3, "end_session": True})
    Study.objects.filter(pk=study.pk).update(config=config)
    study.refresh_from_db()
    hasty = started_on_desktop(study)
    _pass_training(hasty)
    assert answer(hasty, 1, response_ms=100).session.state == Session.State.RATING
    assert answer(hasty, 2, response_ms=900).session.state == Session.State.RATING
    assert answer(hasty, 1, response_ms=100).session.state == Session.State.SCREENED_OUT  # median 100 ms
    assert Session.objects.get(rater=hasty).end_reason == (
        "attention: median response time 100 ms over 3 answers in a row, below 600 ms")


def test_paired_studies_check_the_sides_chosen_as_they_arrive(datasets_root, media_root):
    """straight_line = 3 on a paired study: the third judged pair answered "left" in a row ends the
    session; the practice pairs' answers (told, warm-up) do not count. Catches the attention check
    reading ratings only (it would never fire here) and practice answers in the run."""
    study = ready_study("""name = "pairattention"
seed = 5
datasets = ["Set5"]
methods = ["nearest", "bicubic", "hr"]
protocol = "pairwise"

[pairwise]
practice_pairs = 2
gold_pairs = 0

[attention]
straight_line = 3
""", datasets_root)
    rater = started(study)
    states = []
    for _ in range(5):
        session = Session.objects.get(rater=rater)
        if session.is_over:
            break
        item = sessions.current_item(session)
        result = sessions.record_judgment(rater, sessions.item_token(item), PairAnswer("left"), 1500)
        states.append((item.kind, result.session.state))
    assert states == [("practice", "calibration"), ("practice", "rating"), ("pair", "rating"), ("pair", "rating"),
                      ("pair", "screened_out")]
    assert Session.objects.get(rater=rater).end_reason == "attention: the same answer (left) 3 times in a row"
