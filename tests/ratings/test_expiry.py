"""Expiring stalled crowd sessions (ratings.expiry): when, which, and the race with an answer."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone

from ratings import enrolment, expiry, sessions, studies, tasks
from ratings.models import Rater, Rating, Session, Study

from .crowd_study import STALL, idle_since, make_crowd_study, rate_current, worker

pytestmark = pytest.mark.django_db

@pytest.fixture
def crowd_study(datasets_root, media_root):
    return make_crowd_study(datasets_root)


def test_an_idle_session_expires_just_after_stall_minutes_and_not_at_them(crowd_study):
    """Off by one: catches ``<=`` for ``<`` (expired at exactly stall_minutes) and a cutoff in seconds or
    hours (expired long before, or never)."""
    rater = worker(crowd_study, "w1")
    t0 = timezone.now()
    idle_since(rater, t0)
    assert expiry.expire_stalled(crowd_study, now=t0 + STALL - timedelta(seconds=1)) == 0
    assert expiry.expire_stalled(crowd_study, now=t0 + STALL) == 0  # exactly stall_minutes: not yet
    assert Session.objects.get(rater=rater).state == Session.State.RATING
    later = t0 + STALL + timedelta(microseconds=1)
    assert expiry.expire_stalled(crowd_study, now=later) == 1
    session = Session.objects.get(rater=rater)
    assert (session.state, session.ended_at, session.end_reason) == (
        Session.State.EXPIRED, later, "no answer for more than 10 minutes")
    assert expiry.expire_stalled(crowd_study, now=later + STALL) == 0  # once only: the task may run again


def test_an_answer_restarts_the_clock(crowd_study):
    """Catches expiry by ``started_at`` (a worker who keeps rating for longer than stall_minutes would be
    expired mid-session) instead of the last activity."""
    rater = worker(crowd_study, "w1")
    long_ago = timezone.now() - 3 * STALL
    Session.objects.filter(rater=rater).update(started_at=long_ago, last_active_at=long_ago)
    rate_current(rater)
    assert expiry.expire_stalled(crowd_study) == 0
    assert Session.objects.get(rater=rater).state == Session.State.RATING


def test_only_live_sessions_of_this_crowd_study_expire(crowd_study, rating_study):
    """Catches expiring a lab study's sessions (no [crowd]: a lab rater may pause for a day), a session
    that never started (it holds no items), a complete one, or another study's."""
    lab = studies.create_invitations(rating_study, 1)[0]
    sessions.start_session(lab)
    waiting = enrolment.enrol(crowd_study, "no-consent-yet")
    done = worker(crowd_study, "done")
    while Session.objects.get(rater=done).state != Session.State.COMPLETE:
        rate_current(done)
    stalled = worker(crowd_study, "stalled")
    ages_ago = timezone.now() - timedelta(days=30)
    Session.objects.update(last_active_at=ages_ago)
    assert expiry.expire_stalled(rating_study) == 0
    assert expiry.expire_stalled(crowd_study) == 1
    states = {s.rater_id: s.state for s in Session.objects.all()}
    assert states == {lab.pk: Session.State.CALIBRATION, waiting.pk: Session.State.CONSENT,
                      done.pk: Session.State.COMPLETE, stalled.pk: Session.State.EXPIRED}


def test_an_expired_worker_can_store_nothing_more(crowd_study):
    """Catches an expired session that still takes answers (its items were given to someone else)."""
    rater = worker(crowd_study, "w1")
    rate_current(rater)
    idle_since(rater, timezone.now() - 2 * STALL)
    expiry.expire_stalled(crowd_study)
    with pytest.raises(sessions.RatingRefused) as info:
        rate_current(rater)
    assert info.value.status == 410 and info.value.message == sessions.ENDED_MESSAGE
    assert Rating.objects.filter(rater=rater).count() == 1  # the rating given before is kept


def test_the_task_and_the_command_expire_open_crowd_studies_only(crowd_study, rating_study):
    """Catches the task or command skipping crowd studies, or expiring a closed study's sessions (its
    results are final) or a lab study's."""
    stalled = worker(crowd_study, "stalled")
    lab = studies.create_invitations(rating_study, 1)[0]
    sessions.start_session(lab)
    Session.objects.update(last_active_at=timezone.now() - 2 * STALL)
    Study.objects.filter(pk=crowd_study.pk).update(state=Study.State.CLOSED)
    assert tasks.expire_sessions.delay().get() == {}  # eager without a broker
    Study.objects.filter(pk=crowd_study.pk).update(state=Study.State.READY)
    assert tasks.expire_sessions.delay().get() == {"crowd": 1}
    assert Session.objects.get(rater=stalled).state == Session.State.EXPIRED
    assert Session.objects.get(rater=lab).state == Session.State.CALIBRATION

    again = worker(crowd_study, "again")
    idle_since(again, timezone.now() - 2 * STALL)
    from io import StringIO

    out = StringIO()
    call_command("expire_sessions", "crowd", stdout=out)
    assert out.getvalue().strip() == "crowd: 1 stalled session expired"
    assert Session.objects.get(rater=again).state == Session.State.EXPIRED
    with pytest.raises(Exception, match="no \\[crowd\\] table"):
        call_command("expire_sessions", "rating", stdout=StringIO())


# -- the race with an answer (PostgreSQL: two connections at once) ----------------------------------
def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("SQLite takes the write lock at BEGIN (IMMEDIATE): an answer and an expiry run one after "
                    "the other there; the race needs two at once: run with DATABASE_URL=postgres://...")


@pytest.mark.django_db(transaction=True)
def test_an_answer_holding_the_session_saves_it_from_an_expiry_that_waited(crowd_study):
    """The answer locks the session and lands first; the expiry, waiting for the lock, must then see the
    new ``last_active_at`` and leave the session alone. Catches the update filtered through a join
    (``rater__study=``: PostgreSQL re-checks only the outer row, not the ``id IN (SELECT ...)`` scan,
    and expires the session the answer just moved), and the update taking no row lock at all."""
    _postgres_only()
    rater = worker(crowd_study, "w1")
    idle_since(rater, timezone.now() - STALL - timedelta(minutes=1))
    outcome = {}

    def expire():
        try:
            outcome["expired"] = expiry.expire_stalled(crowd_study)
        finally:
            connection.close()

    other = threading.Thread(target=expire)
    with transaction.atomic():
        Session.objects.select_for_update().get(rater=rater)  # the answer's request holds the session ...
        other.start()
        other.join(1.0)
        assert other.is_alive(), f"the expiry did not wait for the session's lock: {outcome}"
        assert rate_current(rater).stored  # ... and stores its answer (last_active_at moves on)
    other.join(30)
    assert outcome == {"expired": 0}
    assert Session.objects.get(rater=rater).state == Session.State.RATING
    assert Rating.objects.filter(rater=rater).count() == 1


@pytest.mark.django_db(transaction=True)
def test_an_answer_waiting_behind_an_expiry_is_refused(crowd_study):
    """The expiry lands first; the answer, waiting for the session's lock, must read ``expired`` and
    store nothing. Catches the answer path reading the state before it locks (or without a lock)."""
    _postgres_only()
    rater = worker(crowd_study, "w1")
    token = sessions.item_token(sessions.current_item(Session.objects.get(rater=rater)))
    idle_since(rater, timezone.now() - STALL - timedelta(minutes=1))
    outcome = {}

    def answer():
        try:
            outcome["stored"] = sessions.record_rating(rater, token, 4, 900).stored
        except sessions.RatingRefused as exc:
            outcome["refused"] = exc.status
        finally:
            connection.close()

    other = threading.Thread(target=answer)
    with transaction.atomic():
        assert expiry.expire_stalled(crowd_study) == 1  # holds the row until commit
        other.start()
        other.join(1.0)
        assert other.is_alive(), f"the answer did not wait for the expiry: {outcome}"
    other.join(30)
    assert outcome == {"refused": 410}
    assert Rating.objects.filter(rater=rater).count() == 0
    assert Session.objects.get(rater=rater).state == Session.State.EXPIRED


@pytest.mark.django_db(transaction=True)
def test_answers_and_expiries_at_once_never_both_win(crowd_study):
    """Many rounds of an answer and an expiry started together (both directions happen): in every
    round either the rating is stored and the session lives on, or the session expired and nothing was
    stored. Catches any interleaving where both win (a rating stored in an expired session after the
    expiry, or a session expired right after a fresh answer). Runs on SQLite too (serialised there)."""
    raters = [worker(crowd_study, f"w{k}") for k in range(6)]
    for rater in raters:
        tokens = sessions.item_token(sessions.current_item(Session.objects.get(rater=rater)))
        idle_since(rater, timezone.now() - STALL - timedelta(minutes=1))
        barrier, outcome = threading.Barrier(2), {}

        def answer(rater=rater, token=tokens, outcome=outcome, barrier=barrier):
            try:
                barrier.wait()
                outcome["stored"] = sessions.record_rating(rater, token, 4, 900).stored
            except sessions.RatingRefused as exc:
                outcome["refused"] = exc.status
            finally:
                connection.close()

        def expire(outcome=outcome, barrier=barrier):
            try:
                barrier.wait()
                outcome["expired"] = expiry.expire_stalled(crowd_study)
            finally:
                connection.close()

        threads = [threading.Thread(target=answer), threading.Thread(target=expire)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        session = Session.objects.get(rater=rater)
        stored = Rating.objects.filter(rater=rater).count()
        if outcome.get("stored"):
            assert (outcome["expired"], session.state, stored) == (0, Session.State.RATING, 1), outcome
        else:
            assert (outcome, session.state, stored) == ({"refused": 410, "expired": 1}, Session.State.EXPIRED, 0)


def test_a_worker_who_joined_and_never_consented_expires_and_cannot_consent_late(datasets_root, media_root):
    """Catches the cap bypass of a lapsed consent: enrol to the cap, wait out stall_minutes, enrol to
    the cap again, then have everyone consent (twice the cap live at once)."""
    study = make_crowd_study(datasets_root)
    early = enrolment.enrol(study, "joined-early")
    Rater.objects.filter(pk=early.pk).update(created_at=timezone.now() - 2 * STALL)
    on_time = enrolment.enrol(study, "joined-now")  # its enrolment expires the lapsed one
    session = Session.objects.get(rater=early)
    assert session.state == Session.State.EXPIRED and "not started within 10 minutes" in session.end_reason
    assert sessions.start_session(early).state == Session.State.EXPIRED  # no items drawn, nothing counted
    assert not session.items.exists()
    assert Session.objects.get(rater=on_time).state == Session.State.CONSENT
