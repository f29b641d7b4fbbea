"""Topping up a balanced crowd study (ratings.balance): what counts, what goes back, who gets it, and a
study whose workers quit at random ending with every stimulus at exactly its target."""

from __future__ import annotations

import random
import re
from collections import Counter
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from ratings import balance, enrolment, expiry, sessions
from ratings.models import Rating, Session, SessionItem, Stimulus

from .crowd_study import STALL, idle_since, make_crowd_study, one_session_of_each_state, rate_current, worker

pytestmark = pytest.mark.django_db

TARGET, PER_WORKER = 2, 5  # the crowd study's design: 15 stimuli x 2 ratings, 5 per worker


@pytest.fixture
def crowd_study(datasets_root, media_root):
    return make_crowd_study(datasets_root)


def counts(study) -> dict[int, int]:
    return {s.pk: s.n for s in balance.stimulus_counts(study)}


def given(rater) -> set[int]:
    return set(SessionItem.objects.filter(session__rater=rater, kind="test").values_list("stimulus_id", flat=True))


def rated_of(rater) -> set[int]:
    return set(Rating.objects.filter(rater=rater).values_list("stimulus_id", flat=True))


def test_an_expired_sessions_ratings_count_and_its_unrated_items_go_back(crowd_study):
    """Catches dropping an expired worker's ratings (they are in the results, so the stimulus would be
    over-collected) and keeping their unrated items counted (those stimuli would never be topped up)."""
    quitter = worker(crowd_study, "quitter")
    rate_current(quitter)
    rate_current(quitter)
    idle_since(quitter, timezone.now() - 2 * STALL)
    assert expiry.expire_stalled(crowd_study) == 1
    mine, rated = given(quitter), rated_of(quitter)
    assert len(mine) == PER_WORKER and len(rated) == 2
    n = counts(crowd_study)
    assert {pk: n[pk] for pk in mine} == {pk: 1 if pk in rated else 0 for pk in mine}
    assert balance.item_counts(crowd_study) == {"assigned": 5, "rated": 2, "waiting": 0, "returned": 3,
                                                "discarded": 0, "counted": 2}


def test_a_screened_out_sessions_items_all_go_back(crowd_study):
    """A screened-out worker's ratings stay out of the results, so they must not count either. Catches
    counting them (their stimuli would end short of real ratings)."""
    out = worker(crowd_study, "careless")
    rate_current(out)
    Session.objects.filter(rater=out).update(state=Session.State.SCREENED_OUT)
    assert set(counts(crowd_study).values()) == {0}
    assert balance.item_counts(crowd_study) == {"assigned": 5, "rated": 1, "waiting": 0, "returned": 4,
                                                "discarded": 1, "counted": 0}


def test_a_newcomer_after_an_expiry_is_given_exactly_the_returned_items(crowd_study):
    """Six workers hold all 30 places; one rates 2 and stalls. The next worker must get exactly the 3
    returned stimuli, and nothing more. Catches returned items not ranked first, and filling the rest
    of the session with stimuli already at their target (over-collection)."""
    first = [worker(crowd_study, f"w{k}") for k in range(6)]
    assert set(counts(crowd_study).values()) == {TARGET}
    quitter = first[2]
    rate_current(quitter)
    rate_current(quitter)
    idle_since(quitter, timezone.now() - 2 * STALL)
    expiry.expire_stalled(crowd_study)
    returned = given(quitter) - rated_of(quitter)
    newcomer = worker(crowd_study, "newcomer")
    assert given(newcomer) == returned
    assert Session.objects.get(rater=newcomer).planned_scored_items == 3  # a shorter session
    assert set(counts(crowd_study).values()) == {TARGET}


def test_no_stimulus_is_counted_above_its_target_and_a_full_study_gives_nothing(crowd_study):
    """The over-collection bound by construction: a stimulus is handed out only while it is short.
    Catches the fill rule (a newcomer given full stimuli when fewer than items_per_rater are short)."""
    for k in range(5):
        worker(crowd_study, f"w{k}")
    short = {pk for pk, n in counts(crowd_study).items() if n < TARGET}
    assert len(short) == 5  # 25 of 30 places given, the least-assigned first: five stimuli at 1
    sixth = worker(crowd_study, "sixth")
    assert given(sixth) == short and max(counts(crowd_study).values()) == TARGET
    raters_before = crowd_study.raters.count()
    with pytest.raises(enrolment.EnrolmentRefused) as refused:  # refused at the door: nothing to give
        enrolment.enrol(crowd_study, "late")
    assert refused.value.status == 410 and "with a worker right now" in refused.value.message
    assert crowd_study.raters.count() == raters_before  # no rater left waiting at consent for ever
    assert max(counts(crowd_study).values()) == TARGET


def test_a_full_study_refuses_newcomers_until_a_stalled_session_gives_its_items_back(crowd_study):
    """Balanced enrolment closes on top-up's count, not on completed sessions: catches a door that
    admits a newcomer with nothing short (a rater stuck at consent, holding a place under the cap) and
    one that stays shut after an expiry returned items."""
    holders = [worker(crowd_study, f"w{k}") for k in range(6)]  # 30 places: every stimulus counted twice
    with pytest.raises(enrolment.EnrolmentRefused, match="with a worker right now"):
        enrolment.enrol(crowd_study, "early")
    for quitter in holders[:2]:  # two quit after 3 of their 5 ratings: 4 items come back
        for _ in range(3):
            rate_current(quitter)
        idle_since(quitter, timezone.now() - 2 * STALL)
    newcomer = worker(crowd_study, "after-expiry")  # the enrolment expires both first
    assert {Session.objects.get(rater=q).state for q in holders[:2]} == {Session.State.EXPIRED}
    assert given(newcomer) == (given(holders[0]) - rated_of(holders[0])) | (given(holders[1]) - rated_of(holders[1]))
    while Session.objects.get(rater=newcomer).state != Session.State.COMPLETE:
        rate_current(newcomer)
    for holder in holders[2:]:
        while Session.objects.get(rater=holder).state != Session.State.COMPLETE:
            rate_current(holder)
    # 5 completed sessions (target 6: 15 x 2 / 5), yet every rating is in: the door closes on ratings
    assert Session.objects.filter(rater__study=crowd_study, state=Session.State.COMPLETE).count() == 5
    with pytest.raises(enrolment.EnrolmentRefused, match="all the ratings it needs"):
        enrolment.enrol(crowd_study, "too-late")


def test_a_worker_who_never_consents_stops_holding_a_place_after_stall_minutes(crowd_study, settings):
    """Catches a cap that counts enrolled-but-never-started raters for ever (each arrival that
    leaves at the consent page would shrink the study's room for replacements)."""
    settings.SR_ENROLMENT_CAP_FACTOR = 1 / 6  # a cap of one open rater (target 6)
    idle = enrolment.enrol(crowd_study, "left-at-consent")
    with pytest.raises(enrolment.EnrolmentRefused, match="all the raters it needs"):
        enrolment.enrol(crowd_study, "second")
    type(idle).objects.filter(pk=idle.pk).update(created_at=timezone.now() - 2 * STALL)
    assert enrolment.enrol(crowd_study, "second").study_id == crowd_study.pk


# -- a study of workers who quit at random, through the real pages ---------------------------------
class SimulatedWorker:
    """A browser of one worker: joins by the study link, consents, rates with rater.js's JSON posts."""

    def __init__(self, study, name: str):
        self.client, self.name, self.study = Client(), name, study
        self.token = self.item = self.rate_url = None
        self.sent: list[int] = []  # scores the server answered 200 and stored

    def join(self) -> str:
        """'rating', 'nothing' (consent refused: nothing short now) or 'closed' (enrolment refused)."""
        joined = self.client.post(f"/join/{self.study.open_enrolment_token}/", {"worker_id": self.name})
        if joined.status_code == 410 and "with a worker right now" in joined.content.decode():
            return "nothing"  # refused at the door: the rest waits in live or stalled sessions
        if joined.status_code != 302:
            return "closed"
        self.token = joined["Location"].strip("/").split("/")[-1]
        started = self.client.post(f"/r/{self.token}/start/", {"consent": "on", "device_pixel_ratio": "1",
                                                                 "viewport": "1366x768"})
        if started.status_code == 410:
            return "nothing"
        self.rate_url = f"/r/{self.token}/rate/"
        page = self.client.get(self.rate_url).content.decode()
        self.item = re.search(r'name="item" value="([^"]+)"', page).group(1)
        return "rating"

    def rate(self, score: int) -> bool:
        """One answer; False once the session is over (complete, or refused because it expired)."""
        answer = self.client.post(self.rate_url, {"item": self.item, "score": str(score), "response_ms": "900"},
                                  HTTP_X_RATING_CLIENT="fetch")
        data = answer.json()
        if answer.status_code != 200:
            return False
        assert data["stored"]
        self.sent.append(score)
        if "redirect" in data:
            return False
        self.item = data["item"]
        return True


def test_workers_quitting_at_random_leave_every_stimulus_at_exactly_its_target(crowd_study, settings):
    """Up to 4 workers at once; each answer has a 15% chance of being the worker's last (they never come
    back); a quitter's session is idle for longer than stall_minutes 3 steps later (its clock moved
    back), and the next enrolment expires it. Arrivals continue until every stimulus has its target.

    Catches: expired items never returned (the study never ends), returned items not given out (same),
    ratings lost (a 200 without its row), over-collection (any stimulus above its target: more than
    the workers in flight at the end, which is zero here since no stimulus is ever counted above its
    target), and a stimulus ending short."""
    rng = random.Random(18)
    in_flight: list[SimulatedWorker] = []
    stalled: list[tuple[int, SimulatedWorker]] = []
    everyone: list[SimulatedWorker] = []
    in_flight_at_target, turned_away = None, False
    for step in range(2000):
        for due, w in [entry for entry in stalled if entry[0] <= step]:
            Session.objects.filter(rater__token=w.token).update(last_active_at=timezone.now() - STALL - timedelta(minutes=1))
            stalled.remove((due, w))
            turned_away = False  # an arrival now finds that session expired and its items back
        missing = balance.target_counts(crowd_study)["ratings_missing"]
        if missing == 0 and in_flight_at_target is None:
            in_flight_at_target = len(in_flight)
        if missing == 0 and not in_flight:
            break
        if missing and len(in_flight) < 4 and not turned_away:
            newcomer = SimulatedWorker(crowd_study, f"worker-{len(everyone)}")
            outcome = newcomer.join()
            assert outcome != "closed", "enrolment closed with stimuli short of their target"
            everyone.append(newcomer)
            if outcome == "rating":
                in_flight.append(newcomer)
            turned_away = outcome == "nothing"  # the rest waits in live or stalled sessions
            continue
        if not in_flight:
            continue  # everyone left holds items of stalled sessions: wait for them to expire
        w = rng.choice(in_flight)
        if rng.random() < 0.15:
            in_flight.remove(w)
            stalled.append((step + 3, w))
        elif not w.rate(rng.randint(1, 5)):
            in_flight.remove(w)
    else:
        pytest.fail("the study did not reach its target in 2000 steps")

    states = Counter(Session.objects.filter(rater__study=crowd_study).values_list("state", flat=True))
    assert states[Session.State.EXPIRED] > 0 and states[Session.State.COMPLETE] > 0  # both happened
    kept = Counter(Rating.objects.filter(rater__study=crowd_study).exclude(
        item__session__state=Session.State.SCREENED_OUT).values_list("stimulus_id", flat=True))
    stimuli = Stimulus.objects.filter(study=crowd_study, image__dataset__role="test").values_list("pk", flat=True)
    assert {pk: kept[pk] for pk in stimuli} == {pk: TARGET for pk in stimuli}
    assert max(kept.values()) - TARGET <= in_flight_at_target
    for w in everyone:  # none lost: every stored answer has its row, in the order sent
        stored = list(Rating.objects.filter(rater__token=w.token).order_by("item__position")
                      .values_list("score", flat=True)) if w.token else []
        assert stored == w.sent, w.name


def test_the_dashboard_shows_sessions_and_items_by_state(crowd_study, admin_client):
    """Catches a dashboard that shows only started/completed raters (expired and screened-out
    sessions hidden among them) or counts returned items as assigned work still to come."""
    one_session_of_each_state(crowd_study)
    page = admin_client.get(f"/studies/{crowd_study.name}/").content.decode()
    assert "Sessions: 1 in progress, 1 complete, 1 expired, 1 screened out, 1 not started." in page
    assert ("Items: 20 assigned, 9 rated, 4 waiting in live sessions, 7 returned to the pool (unrated when their "
            "session expired or was screened out), 1 rated in screened-out sessions (kept, not counted).") in page
    assert "stimuli have their 2 ratings" in page


def test_ties_are_broken_by_each_raters_own_draw_not_by_database_order(crowd_study):
    """Catches ranking ties by primary key (every first worker of every study would get the same
    five stimuli: the first images of the first method) and a draw shared by all raters."""
    first, second = worker(crowd_study, "first"), worker(crowd_study, "second")
    lowest = set(sorted(counts(crowd_study))[:5])
    assert given(first) != lowest
    assert given(first).isdisjoint(given(second))  # 15 stimuli at 0 then 5 at 1: the second takes zeros


def test_consent_expires_stalled_sessions_before_drawing(crowd_study):
    """A session that stalls between a newcomer's enrolment and their consent gives its items back
    before the newcomer's are drawn; catches expiry at enrolment only."""
    holder = worker(crowd_study, "holder")
    newcomer = enrolment.enrol(crowd_study, "newcomer")
    idle_since(holder, timezone.now() - 2 * STALL)
    sessions.start_session(newcomer, device_pixel_ratio=1.0, viewport="1366x768")
    assert Session.objects.get(rater=holder).state == Session.State.EXPIRED


def test_the_door_counts_the_places_that_workers_waiting_at_consent_will_take(crowd_study):
    """30 places, 5 a worker: six may wait at consent, a seventh would find nothing when they all
    consent. Catches a door that admits while any stimulus is short (near the end a whole cap of
    workers joins for the last rating and all but one are sent away after accepting the task)."""
    waiting = [enrolment.enrol(crowd_study, f"waiting-{k}") for k in range(6)]
    with pytest.raises(enrolment.EnrolmentRefused, match="with a worker right now"):
        enrolment.enrol(crowd_study, "seventh")
    for rater in waiting:
        sessions.start_session(rater, device_pixel_ratio=1.0, viewport="1366x768")
    assert set(counts(crowd_study).values()) == {TARGET}  # every place taken, none twice
    assert all(Session.objects.get(rater=r).planned_scored_items == 5 for r in waiting)

