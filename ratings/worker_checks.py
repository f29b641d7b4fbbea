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

This module parses the tables into values; what a rule decides about a worker lives with the value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["AttentionRules", "DEVICE_TYPES", "Qualification", "WorkerChecksError", "parse_attention",
           "parse_qualification"]

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
