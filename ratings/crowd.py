"""Crowd platforms: what a worker's arrival URL carries, and where a finished worker is sent.

One table per platform's conventions, read from the study file's ``[crowd]`` table::

    [crowd]
    platform = "prolific"          # or "mturk", or "generic"
    completion_url = "https://app.prolific.com/submissions/complete?cc={code}"
    screened_out_url = "https://app.prolific.com/submissions/complete?cc={code}"
    completion_code = "C1A2B3C4"   # optional: the code set in Prolific's study form (else each worker's own)
    screened_out_code = "S9X8Y7"   # optional: likewise for screened-out workers
    worker_param = "PROLIFIC_PID"  # generic only: the URL parameter holding the worker id
    stall_minutes = 60             # a session idle this long is expired and its items go back

- Prolific sends ``PROLIFIC_PID``, ``STUDY_ID`` and ``SESSION_ID``; a finished worker is redirected
  to ``completion_url`` with ``{code}`` replaced (screened-out workers to ``screened_out_url`` with
  their own code), and the code is shown as a fallback.
- MTurk (ExternalQuestion) sends ``assignmentId``, ``hitId``, ``workerId``, ``turkSubmitTo``; in
  preview ``assignmentId = ASSIGNMENT_ID_NOT_AVAILABLE`` and nobody is enrolled. A finished worker's
  page posts ``assignmentId`` and the code to ``<turkSubmitTo>/mturk/externalSubmit``, and only to
  MTurk's own hosts (``SR_MTURK_SUBMIT_HOSTS``): the address comes from the URL, so anything else
  would hand the completion code to whoever wrote the link.
- Generic: any platform, through ``worker_param`` and a ``completion_url`` template.

Worker ids are stored with the platform's name in front (``prolific:5f3c...``), so the same id on
two platforms is two people. Nothing here talks to a platform's API.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

from django.conf import settings

PLATFORMS = ("prolific", "mturk", "generic")
MTURK_PREVIEW = "ASSIGNMENT_ID_NOT_AVAILABLE"
PROLIFIC_COMPLETE = "https://app.prolific.com/submissions/complete?cc={code}"
MTURK_SUBMIT_PATH = "/mturk/externalSubmit"
DEFAULT_MTURK_SUBMIT_HOSTS = ("www.mturk.com", "workersandbox.mturk.com")
PARAMS = {
    "prolific": ("PROLIFIC_PID", ("STUDY_ID", "SESSION_ID")),
    "mturk": ("workerId", ("assignmentId", "hitId", "turkSubmitTo")),
}
URL_MAX = 2000
PARAM_VALUE_MAX = 200
_KEYS = ("platform", "completion_url", "screened_out_url", "worker_param", "stall_minutes", "completion_code",
         "screened_out_code")
FIXED_CODE = re.compile(r"[A-Za-z0-9_-]{1,40}")
WORKER_ID = re.compile(r"[A-Za-z0-9_.:=()-]+")

__all__ = ["Arrival", "Completion", "CrowdConfig", "CrowdError", "PLATFORMS", "arrival", "completion",
           "parse_crowd", "platform_worker_id", "study_link"]


class CrowdError(ValueError):
    """A ``[crowd]`` value, or an arrival URL, that cannot be used; ``key`` names the value."""

    def __init__(self, key: str, problem: str):
        self.key, self.problem = key, problem
        super().__init__(f"{key}: {problem}")


@dataclass(frozen=True)
class CrowdConfig:
    platform: str
    completion_url: str = ""
    screened_out_url: str = ""
    worker_param: str = ""
    stall_minutes: int = 60
    # Prolific matches the codes set in its study form: fixed codes, when given, go into {code}
    # instead of each worker's own (which stays on record with the session).
    completion_code: str = ""
    screened_out_code: str = ""

    @property
    def id_param(self) -> str:
        return PARAMS[self.platform][0] if self.platform in PARAMS else self.worker_param

    @property
    def extra_params(self) -> tuple[str, ...]:
        return PARAMS[self.platform][1] if self.platform in PARAMS else ()

    def to_json(self) -> dict:
        return dict(self.__dict__)


def _template(table: Mapping, key: str, required: bool) -> str:
    value = table.get(key, "")
    if not isinstance(value, str):
        raise CrowdError(f"crowd.{key}", "must be a text (a URL)")
    if not value:
        if required:
            raise CrowdError(f"crowd.{key}", "is required for this platform")
        return ""
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.netloc:
        raise CrowdError(f"crowd.{key}", f"must be an https:// URL, got {value!r}")
    if "{code}" not in value:
        raise CrowdError(f"crowd.{key}", "must contain {code}, where the completion code goes")
    if len(value) > URL_MAX or any(c in value for c in "\"'<> \n\r\t"):
        raise CrowdError(f"crowd.{key}", "must be a plain URL (no quotes, spaces or angle brackets)")
    try:
        value.format(code="x")
    except (KeyError, IndexError, ValueError):
        raise CrowdError(f"crowd.{key}", "may hold {code} and no other {...} field") from None
    return value


def parse_crowd(table: Mapping | None) -> CrowdConfig | None:
    """The validated ``[crowd]`` table (None: the study is not run on a crowd platform)."""
    if table is None:
        return None
    unknown = sorted(set(table) - set(_KEYS))
    if unknown:
        raise CrowdError(f"crowd.{unknown[0]}", f"unknown key (known: {', '.join(_KEYS)})")
    platform = table.get("platform")
    if platform not in PLATFORMS:
        raise CrowdError("crowd.platform", f"must be one of {', '.join(PLATFORMS)}, got {platform!r}")
    stall = table.get("stall_minutes", 60)
    if isinstance(stall, bool) or not isinstance(stall, int) or not 1 <= stall <= 7 * 24 * 60:
        raise CrowdError("crowd.stall_minutes", f"must be a whole number of minutes from 1 to 10080, got {stall!r}")
    worker_param = table.get("worker_param", "")
    if platform == "generic":
        if not isinstance(worker_param, str) or not worker_param.isidentifier():
            raise CrowdError("crowd.worker_param", "a generic platform needs the URL parameter holding the worker id")
    elif worker_param:
        raise CrowdError("crowd.worker_param", f"{platform} sends {PARAMS[platform][0]}; worker_param is for generic")
    codes = {}
    for key in ("completion_code", "screened_out_code"):
        value = table.get(key, "")
        if value and (not isinstance(value, str) or not FIXED_CODE.fullmatch(value)):
            raise CrowdError(f"crowd.{key}", f"must be the platform's code: 1 to 40 letters, digits, _ or -, got {value!r}")
        codes[key] = value
    if platform == "mturk":
        for key in ("completion_url", "screened_out_url", "completion_code", "screened_out_code"):
            if table.get(key):
                raise CrowdError(f"crowd.{key}", "MTurk workers submit back to MTurk; there is no completion URL")
        return CrowdConfig("mturk", stall_minutes=stall)
    completion_url = _template(table, "completion_url", required=platform == "generic")
    if platform == "prolific" and not completion_url:
        completion_url = PROLIFIC_COMPLETE
    screened_out = _template(table, "screened_out_url", required=False) or completion_url
    return CrowdConfig(platform, completion_url, screened_out, worker_param, stall, **codes)


def platform_worker_id(platform: str, worker_id: str) -> str:
    """The stored form of a platform's worker id: the platform's name in front, so ids of two
    platforms never collide (the rest is normalised by :func:`ratings.enrolment.normalise_worker_id`)."""
    return f"{platform}:{worker_id}"


@dataclass(frozen=True)
class Arrival:
    """What a crowd worker's link carried: the worker id (None in MTurk's preview) and the
    platform's other ids (stored with the rater, shown in crowd_decisions)."""

    worker_id: str | None
    ids: dict = field(default_factory=dict)
    preview: bool = False


def _value(query: Mapping, name: str) -> str:
    value = str(query.get(name, "") or "").strip()
    if len(value) > PARAM_VALUE_MAX:
        raise CrowdError(name, f"is longer than {PARAM_VALUE_MAX} characters")
    return value


def arrival(crowd: CrowdConfig, query: Mapping) -> Arrival:
    """Read an arrival URL's parameters; raises :class:`CrowdError` when the worker id is missing
    (except in MTurk's preview, which shows the task and enrols nobody)."""
    ids = {name: _value(query, name) for name in crowd.extra_params}
    if crowd.platform == "mturk" and ids.get("assignmentId") in ("", MTURK_PREVIEW):
        return Arrival(None, ids, preview=True)
    if crowd.platform == "mturk":
        mturk_submit_url(ids.get("turkSubmitTo", ""))  # refuse a foreign submit address at the door
    worker = _value(query, crowd.id_param)
    if not worker:
        raise CrowdError(crowd.id_param, "is missing from the link: please open the study from the platform")
    if not WORKER_ID.fullmatch(worker):
        # Platforms' ids are letters and digits: a comma, space or quote would split a line of the
        # bulk files crowd_decisions writes (one id per line, "id,amount") into two workers.
        raise CrowdError(crowd.id_param, "is not a worker id of the platform (letters, digits and _ . : = ( ) - "
                                         "only): please open the study from the platform")
    return Arrival(worker, {k: v for k, v in ids.items() if v})


def mturk_submit_url(turk_submit_to: str) -> str:
    """``<turkSubmitTo>/mturk/externalSubmit``, for MTurk's own hosts only (``SR_MTURK_SUBMIT_HOSTS``)."""
    parts = urlsplit(turk_submit_to)
    hosts = tuple(getattr(settings, "SR_MTURK_SUBMIT_HOSTS", DEFAULT_MTURK_SUBMIT_HOSTS))
    # No user info, backslash or anything else around the host: urlsplit reads "https://evil\@www.mturk.com"
    # as host www.mturk.com, while a browser posts to evil. The address is rebuilt from host and port.
    try:
        host = parts.hostname or ""
        netloc = host if parts.port is None else f"{host}:{parts.port}"
    except ValueError:  # a port that is no number
        netloc = ""
    plain = bool(host) and parts.netloc.lower() == netloc and not parts.query and not parts.fragment and \
        not any(c in turk_submit_to for c in "\\@ \t\r\n")
    local_test = parts.scheme == "http" and host in ("127.0.0.1", "localhost") and netloc in hosts
    if not plain or not (local_test or (parts.scheme == "https" and host in hosts)) or parts.path not in ("", "/"):
        raise CrowdError("turkSubmitTo", f"{turk_submit_to!r} is not an MTurk address")
    return f"{parts.scheme}://{netloc}{MTURK_SUBMIT_PATH}"


@dataclass(frozen=True)
class Completion:
    """Where a finished worker goes: ``redirect`` to ``url``, or ``post`` the ``fields`` to ``url``."""

    method: str
    url: str
    fields: dict = field(default_factory=dict)


def completion(crowd: CrowdConfig, code: str, ids: Mapping, *, screened_out: bool = False) -> Completion:
    """The exit of a worker who finished (or was screened out), with their code."""
    if crowd.platform == "mturk":
        return Completion("post", mturk_submit_url(ids.get("turkSubmitTo", "")),
                          {"assignmentId": ids.get("assignmentId", ""), "completion_code": code})
    template = crowd.screened_out_url if screened_out else crowd.completion_url
    return Completion("redirect", template.replace("{code}", quote(code, safe="")))


def study_link(crowd: CrowdConfig, join_url: str) -> str:
    """The URL a researcher pastes into the platform (Prolific fills its ``{{%...%}}`` placeholders;
    MTurk appends its parameters to an ExternalQuestion URL itself)."""
    if crowd.platform == "prolific":
        names = (crowd.id_param, *crowd.extra_params)
        return join_url + "?" + "&".join(f"{n}={{{{%{n}%}}}}" for n in names)
    if crowd.platform == "generic":
        return f"{join_url}?{crowd.worker_param}=WORKER_ID"
    return join_url
