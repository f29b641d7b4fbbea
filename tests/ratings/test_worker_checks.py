"""The worker checks' decisions (ratings.worker_checks): plain values in, the reason in words out.

The session flow calls these as answers arrive (tests/ratings/test_sessions.py); the payment decisions
call the same methods post hoc, so each rule is tested here once, on its edges.
"""

from __future__ import annotations

import statistics

import pytest

from ratings.worker_checks import AttentionRules, Qualification, classify_device, parse_screen

from .qualified import DESKTOP_CHROME, IPHONE_SAFARI

ANDROID_PHONE = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
                 "Chrome/124.0.6367.82 Mobile Safari/537.36")
ANDROID_PHONE_REDUCED = ("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
                         "Chrome/124.0.0.0 Mobile Safari/537.36")  # Chrome's reduced user agent
FIREFOX_ANDROID_PHONE = "Mozilla/5.0 (Android 14; Mobile; rv:125.0) Gecko/125.0 Firefox/125.0"
ANDROID_TABLET = ("Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/124.0.0.0 Safari/537.36")
IPAD_SAFARI = ("Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
               "Version/16.6 Mobile/15E148 Safari/604.1")
MAC_SAFARI = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
              "Version/17.4 Safari/605.1.15")  # a Mac, and iPadOS 13+ asking for the desktop site


@pytest.mark.parametrize(("user_agent", "touch_points", "expected"), [
    (IPHONE_SAFARI, 5, "phone"),
    (ANDROID_PHONE, 5, "phone"),
    (ANDROID_PHONE_REDUCED, 5, "phone"),
    (FIREFOX_ANDROID_PHONE, 5, "phone"),
    (IPAD_SAFARI, 5, "tablet"),  # says "Mobile/15E148" too: catches the phone test made first
    (ANDROID_TABLET, 10, "tablet"),  # Android without Mobile: catches every Android taken for a phone
    (MAC_SAFARI, 5, "tablet"),  # iPadOS's desktop mode: only the touch points tell
    (MAC_SAFARI, 0, "desktop"),
    (DESKTOP_CHROME, 0, "desktop"),
    (DESKTOP_CHROME, 10, "desktop"),  # a touch-screen laptop: a fine primary pointer
])
def test_device_types_of_real_user_agents(user_agent, touch_points, expected):
    assert classify_device(user_agent, coarse_pointer=expected != "desktop", touch_points=touch_points,
                           screen=(390, 844) if expected == "phone" else (1920, 1080)) == expected
    # the user agent alone decides the named devices (no JavaScript: no pointer, no touch points)
    if user_agent != MAC_SAFARI:
        assert classify_device(user_agent) == expected


def test_an_unnamed_device_is_told_by_its_pointer_and_screen():
    """Catches the coarse pointer taken for a phone whatever the screen (a tablet's short side is >= 600)."""
    unnamed = "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 SomeBrowser/1.0"
    assert classify_device(unnamed, coarse_pointer=True, screen=(390, 844)) == "phone"
    assert classify_device(unnamed, coarse_pointer=True, screen=(820, 1180)) == "tablet"
    assert classify_device(unnamed, coarse_pointer=False, screen=(390, 844)) == "desktop"


def test_screen_size_and_device_rules():
    rules = Qualification(min_screen_width=1280, min_screen_height=720, devices=("desktop", "tablet"))
    assert rules.screen_problem((1280, 720)) is None  # exactly the minimum passes
    assert rules.screen_problem((1279, 1080)) == ("qualification: the screen is 1279 x 1080 CSS pixels; this study "
                                                  "needs at least 1280 x 720")
    assert rules.screen_problem((1920, 719)) is not None  # catches a check of the width only
    assert rules.device_problem("phone") == "qualification: a phone is not used in this study (allowed: desktop, tablet)"
    assert rules.device_problem("tablet") is None
    assert rules.environment_problem((1920, 1080), "phone").startswith("qualification: a phone")
    assert Qualification().screen_problem((320, 200)) is None  # no minimum: no rule
    assert parse_screen("1920x1080") == (1920, 1080)
    assert parse_screen("1920x") is None and parse_screen("") is None and parse_screen("1e3x9") is None


def test_training_passes_at_exactly_pass_within_one_and_fails_one_below():
    """Catches an off-by-one (> for >=) and a distance of two counted as close."""
    rules = Qualification(training_items=4, pass_within_one=3)
    expected = [1, 5, 1, 5]
    assert rules.training_problem([2, 4, 1, 3], expected) is None  # 3 within one (2-1, 5-4, 1-1; 5-3 is two)
    assert rules.training_problem([2, 3, 3, 3], expected) == (
        "qualification: 1 of 4 training answers within one point of the expected score, 3 needed")
    assert rules.training_problem([2, 4, 3, 3], expected) == (
        "qualification: 2 of 4 training answers within one point of the expected score, 3 needed")
    # fewer training items shown than needed (a stimulus failed): all of them are needed, not the impossible
    assert rules.training_problem([1, 5], [1, 5]) is None
    assert rules.training_problem([1, 3], [1, 5]) is not None


def test_straight_lining_fires_at_exactly_n_in_a_row_not_n_minus_one():
    """Catches an off-by-one, a count of equal answers that are not in a row, and a run broken by
    another answer carried on."""
    rules = AttentionRules(straight_line=4)
    assert rules.straight_lining([3, 3, 3]) is None
    assert rules.straight_lining([3, 3, 3, 3]) == "attention: the same answer (3) 4 times in a row"
    assert rules.straight_lining([3, 3, 2, 3, 3, 4, 3, 3]) is None  # six 3s, never four in a row
    assert rules.straight_lining([1, 2, 2, 2, 5, 5, 5, 5, 1]) == "attention: the same answer (5) 4 times in a row"
    assert rules.straight_lining(["left"] * 4) is not None  # paired studies: the side chosen
    assert AttentionRules(straight_line=0).straight_lining([3] * 100) is None  # 0: no rule


def test_too_fast_uses_the_median_of_the_window_not_the_mean():
    """Catches the mean: three clicks at 200 ms and one pause of 5 s have a mean of 1.4 s, over the
    limit, and a median of 200 ms, under it; and the reverse."""
    rules = AttentionRules(too_fast_ms=600, window=4)
    clicks = [200, 200, 5000, 200]
    assert statistics.mean(clicks) > 600 > statistics.median(clicks)
    assert rules.too_fast(clicks) == "attention: median response time 200 ms over 4 answers in a row, below 600 ms"
    careful = [50, 700, 700, 700]  # mean 537 ms under the limit, median 700 ms over it
    assert statistics.mean(careful) < 600 < statistics.median(careful)
    assert rules.too_fast(careful) is None


def test_too_fast_waits_for_a_whole_window_of_known_times():
    """Catches a median of fewer answers than the window (one fast first click would end a session)
    and unknown times (None: no JavaScript, a tab left open) taken as fast."""
    rules = AttentionRules(too_fast_ms=600, window=3)
    assert rules.too_fast([100, 100]) is None
    assert rules.too_fast([100, None, 100, None]) is None
    assert rules.too_fast([100, None, 100, 100]) is not None
    assert rules.too_fast([2000, 2000, 2000, 100, 100, 100]) is not None  # a later window counts too
    assert AttentionRules(too_fast_ms=0).too_fast([1] * 50) is None
    assert AttentionRules(straight_line=3, too_fast_ms=600, window=3).problem([4, 4, 4], [100] * 3).startswith(
        "attention: the same answer")
