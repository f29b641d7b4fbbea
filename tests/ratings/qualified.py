"""A crowd study that qualifies its workers: training, viewing-environment rules and attention checks.

Small on purpose (Set5 with nearest and hr: 10 test stimuli; 1 calibration image, 1 gold item and 4
training images, so 12 calibration stimuli), so the tests that make it stay quick.
"""

from __future__ import annotations

from ratings import sessions, studies
from ratings.models import Rater, Session, Study

from .conftest import ready_study

QUALIFIED_STUDY = """
name = "qualified"
seed = 7
datasets = ["Set5"]
methods = ["nearest", "hr"]

[rating]
calibration_images = 1
gold_items = 1
{rating}

[qualification]
training_items = 4
pass_within_one = 3
min_screen_width = 1280
min_screen_height = 720
devices = ["desktop"]

[attention]
straight_line = 4
too_fast_ms = 0
window = 3
end_session = {end_session}
{crowd}"""

DESKTOP_CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/124.0.0.0 Safari/537.36")
IPHONE_SAFARI = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
                 "Version/17.4 Mobile/15E148 Safari/604.1")
DESKTOP = {"device_pixel_ratio": 1.0, "viewport": "1366x768", "screen": "1920x1080", "coarse_pointer": False,
           "touch_points": 0, "user_agent": DESKTOP_CHROME}


def qualified_study(datasets_root, *, end_session: bool = True, rating: str = "", crowd: str = "") -> Study:
    """The study, with every stimulus made (``rating``: more [rating] lines; ``crowd``: a [crowd] table)."""
    text = QUALIFIED_STUDY.format(end_session="true" if end_session else "false", rating=rating, crowd=crowd)
    return ready_study(text, datasets_root)


def started(study: Study, **viewing) -> Rater:
    """A new rater of ``study`` who consented on a desktop (``viewing`` overrides what was reported)."""
    rater = studies.create_invitations(study, 1)[0]
    sessions.start_session(rater, **{**DESKTOP, **viewing})
    rater.refresh_from_db()
    return rater


def answer(rater: Rater, score: int, response_ms: int = 1500) -> sessions.RecordResult:
    """Rate the item the rater's session waits for (after its calibration examples)."""
    session = Session.objects.get(rater=rater)
    while session.state == Session.State.CALIBRATION:
        session = sessions.advance_calibration(rater, session.position)
    item = sessions.current_item(session)
    return sessions.record_rating(rater, sessions.item_token(item), score, response_ms)
