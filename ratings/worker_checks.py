"""The rules a crowd worker must meet: before rating (qualification) and while rating (attention).

Both are tables of the study file, off unless present (a lab study needs neither)::

    [qualification]           # P.808's training section and environment checks
    training_items = 4        # NN/HR training images, rated, the expected score told after each
    pass_within_one = 3       # answers within one point of the expected score needed to pass
    min_screen_width = 1280   # CSS pixels of the screen (0: no rule)
    min_screen_height = 720
    devices = ["desktop"]     # device types allowed: desktop, tablet, phone (default: all three)

    [attention]               # checked as answers arrive (P.910 / P.808 practice)
    straight_line = 12        # the same score this many times in a row (0: no rule)
    too_fast_ms = 600         # median response of the last `window` answers faster than this (0: no rule)
    window = 10
    end_session = true        # false: flag the worker only, let them finish

This module parses the tables into values; what a rule decides about a worker lives with the value,
as a method taking plain values (a screen size, a device type, sequences of scores and response
times) and returning the reason in words, or None when the rule is met. :mod:`ratings.sessions`
calls them as a session goes (and ends the session on a reason); a post hoc reading of the stored
answers (the payment decisions) calls the same methods, so both decide alike.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["AttentionRules", "DEVICE_TYPES", "Qualification", "WorkerChecksError", "classify_device",
           "parse_attention", "parse_qualification", "parse_screen"]

DEVICE_TYPES = ("desktop", "tablet", "phone")
TRAINING_ITEMS_MAX = 40
SCREEN_MAX = 16_384
WINDOW_MAX = 1_000


class WorkerChecksError(ValueError):
    """A value of ``[qualification]`` or ``[attention]`` that cannot be used; ``key`` names it."""

    def __init__(self, key: str, problem: str):
        self.key, self.problem = key, problem
        super().__init__(f"{key}: {problem}")


@dataclass(frozen=True)
class Qualification:
    training_items: int = 4
    pass_within_one: int = 3
    min_screen_width: int = 0
    min_screen_height: int = 0
    devices: tuple[str, ...] = DEVICE_TYPES

    def to_json(self) -> dict:
        return {**self.__dict__, "devices": list(self.devices)}

    @classmethod
    def from_json(cls, data: Mapping) -> Qualification:
        return cls(**{**data, "devices": tuple(data.get("devices", DEVICE_TYPES))})

    @property
    def needs_screen(self) -> bool:
        return bool(self.min_screen_width or self.min_screen_height)

    def screen_problem(self, screen: tuple[int, int] | None) -> str | None:
        """Why a screen of ``screen`` (CSS pixels, width x height) is too small; None: large enough
        or no rule. An unknown screen (None) is no problem here: the caller decides what to ask."""
        if screen is None or not self.needs_screen:
            return None
        width, height = screen
        if width >= self.min_screen_width and height >= self.min_screen_height:
            return None
        return (f"qualification: the screen is {width} x {height} CSS pixels; this study needs at least "
                f"{self.min_screen_width} x {self.min_screen_height}")

    def device_problem(self, device: str) -> str | None:
        """Why a ``device`` (one of DEVICE_TYPES, as :func:`classify_device` tells) may not take part."""
        if device in self.devices:
            return None
        return f"qualification: a {device} is not used in this study (allowed: {', '.join(self.devices)})"

    def environment_problem(self, screen: tuple[int, int] | None, device: str) -> str | None:
        """The first viewing-environment rule the worker fails (device type, then screen size)."""
        return self.device_problem(device) or self.screen_problem(screen)

    def training_problem(self, scores: Sequence[int], expected: Sequence[int]) -> str | None:
        """Why the training answers ``scores`` (against the ``expected`` scores, item by item) fail.

        A pass is at least ``pass_within_one`` answers within one point of the expected score. When
        fewer training items were shown than that (a training stimulus failed to be made) every one
        of them is needed, so the rule never fails everybody.
        """
        close = sum(abs(int(s) - int(e)) <= 1 for s, e in zip(scores, expected, strict=True))
        needed = min(self.pass_within_one, len(scores))
        if close >= needed:
            return None
        return (f"qualification: {close} of {len(scores)} training answers within one point of the expected "
                f"score, {needed} needed")


@dataclass(frozen=True)
class AttentionRules:
    straight_line: int = 0
    too_fast_ms: int = 0
    window: int = 10
    end_session: bool = True

    def to_json(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: Mapping) -> AttentionRules:
        return cls(**data)

    def straight_lining(self, answers: Sequence) -> str | None:
        """Why ``answers`` (scores, or chosen sides, in the order given) are straight-lined: the same
        answer ``straight_line`` times in a row anywhere in them; None: no such run, or no rule."""
        if not self.straight_line:
            return None
        run, previous = 0, object()
        for answer in answers:
            run = run + 1 if answer == previous else 1
            previous = answer
            if run >= self.straight_line:
                return f"attention: the same answer ({answer}) {self.straight_line} times in a row"
        return None

    def too_fast(self, response_ms: Sequence[int | None]) -> str | None:
        """Why the response times (ms, in the order given; None: not known) are too fast: the median of
        some ``window`` consecutive known times is below ``too_fast_ms``. The median, not the mean: a
        few long pauses must not hide a run of clicks made without looking."""
        if not self.too_fast_ms:
            return None
        times = [t for t in response_ms if t is not None]
        for end in range(self.window, len(times) + 1):
            median = statistics.median(times[end - self.window:end])
            if median < self.too_fast_ms:
                return (f"attention: median response time {median:.0f} ms over {self.window} answers in a row, "
                        f"below {self.too_fast_ms} ms")
        return None

    def problem(self, answers: Sequence, response_ms: Sequence[int | None]) -> str | None:
        """The first rule the answers so far fail (straight-lining, then too fast); None: all met."""
        return self.straight_lining(answers) or self.too_fast(response_ms)


# -- the device a worker uses -------------------------------------------------------------------------
# A phone's user agent: "Mobi" (Mozilla's advice: Mobile Safari, Chrome for Android phones, Firefox's
# "Mobile;"), or an iPhone. Tablets say iPad, Tablet (Firefox for Android tablets), or Android without
# Mobile (Chrome on an Android tablet). iPadOS 13+ Safari claims a Mac by default; only its touch
# points tell it apart (no Mac has a touch screen).
_TABLET_UA = re.compile(r"iPad|Tablet|PlayBook|Silk|Kindle", re.IGNORECASE)
_PHONE_UA = re.compile(r"Mobi|iPhone|iPod|Windows Phone", re.IGNORECASE)
PHONE_SHORT_SIDE = 600  # CSS px: the short side of a phone's screen is below this, a tablet's above


def classify_device(user_agent: str, *, coarse_pointer: bool | None = None, touch_points: int | None = None,
                    screen: tuple[int, int] | None = None) -> str:
    """The type of device (``"desktop"``, ``"tablet"`` or ``"phone"``) from what the browser reports.

    The user agent decides when it names the device; otherwise a coarse primary pointer (a finger,
    ``matchMedia("(pointer: coarse)")``) means a phone when the screen's short side is below
    ``PHONE_SHORT_SIDE`` CSS pixels and a tablet otherwise; everything else is a desktop (a laptop
    with a touch screen has a fine primary pointer). Signals not reported (no JavaScript) are None.
    """
    ua = user_agent or ""
    if _TABLET_UA.search(ua):  # before the phone test: iPad Safari also says "Mobile/15E148"
        return "tablet"
    if _PHONE_UA.search(ua):
        return "phone"
    if "Android" in ua:  # Android without "Mobile": a tablet
        return "tablet"
    if "Macintosh" in ua and (touch_points or 0) > 1:  # iPadOS asking for the desktop site
        return "tablet"
    if coarse_pointer:
        if screen is not None and min(screen) < PHONE_SHORT_SIDE:
            return "phone"
        return "tablet"
    return "desktop"


_SCREEN = re.compile(r"^(\d{1,5})x(\d{1,5})$")


def parse_screen(text: str) -> tuple[int, int] | None:
    """``"1920x1080"`` (as the consent page reports ``window.screen``) -> (1920, 1080); None: not one."""
    match = _SCREEN.match(text or "")
    return (int(match[1]), int(match[2])) if match else None


def _count(table: Mapping, name: str, key: str, default: int, low: int, high: int) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise WorkerChecksError(f"{name}.{key}", f"must be a whole number from {low} to {high}, got {value!r}")
    return value


def _unknown(table: Mapping, name: str, known) -> None:
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise WorkerChecksError(f"{name}.{unknown[0]}", f"unknown key (known: {', '.join(known)})")


def parse_qualification(table: Mapping | None) -> Qualification | None:
    """The validated ``[qualification]`` table (None: no qualification)."""
    if table is None:
        return None
    name = "qualification"
    _unknown(table, name, Qualification.__dataclass_fields__)
    items = _count(table, name, "training_items", 4, 0, TRAINING_ITEMS_MAX)
    needed = _count(table, name, "pass_within_one", min(3, items), 0, items)
    width = _count(table, name, "min_screen_width", 0, 0, SCREEN_MAX)
    height = _count(table, name, "min_screen_height", 0, 0, SCREEN_MAX)
    devices = table.get("devices", list(DEVICE_TYPES))
    if (not isinstance(devices, list) or not devices or any(d not in DEVICE_TYPES for d in devices)
            or len(set(devices)) != len(devices)):
        raise WorkerChecksError(f"{name}.devices", f"must list device types from {', '.join(DEVICE_TYPES)}, "
                                                   f"each once, got {devices!r}")
    return Qualification(items, needed, width, height, tuple(d for d in DEVICE_TYPES if d in devices))


def parse_attention(table: Mapping | None) -> AttentionRules | None:
    """The validated ``[attention]`` table (None: no checks as answers arrive)."""
    if table is None:
        return None
    name = "attention"
    _unknown(table, name, AttentionRules.__dataclass_fields__)
    rules = AttentionRules(
        straight_line=_count(table, name, "straight_line", 0, 0, WINDOW_MAX),
        too_fast_ms=_count(table, name, "too_fast_ms", 0, 0, 60_000),
        window=_count(table, name, "window", 10, 1, WINDOW_MAX),
        end_session=table.get("end_session", True),
    )
    if not isinstance(rules.end_session, bool):
        raise WorkerChecksError(f"{name}.end_session", f"must be true or false, got {rules.end_session!r}")
    if rules.straight_line == 1:
        raise WorkerChecksError(f"{name}.straight_line", "1 would end every session at its first answer; use 0 "
                                                         "(no rule) or at least 2")
    return rules
