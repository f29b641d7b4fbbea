"""Where a worker whose session is over goes: the one rule of exits, shown by the done page.

- complete: a lab study shows the completion code; a crowd study sends the worker back to the platform
  with it (:func:`ratings.crowd.completion`: Prolific and generic redirect, MTurk posts a form), or
  with the study's fixed ``[crowd] completion_code`` where one is set (Prolific's study form);
- screened out: the platform's screened-out exit with the screened-out code
  (``sessions.completion_code(rater, "screened_out")``), never the finished workers' code;
- expired: no code at all (the ratings given are kept); the worker is told to return the submission.
"""

from __future__ import annotations

from dataclasses import dataclass

from .crowd import Completion, CrowdError, completion
from .models import Rater, Session
from .sessions import completion_code

__all__ = ["Exit", "exit_for"]


@dataclass(frozen=True)
class Exit:
    """``kind``: ``complete``, ``screened_out`` or ``expired``; ``completion``: the platform's exit
    (None for a lab study, an expired session, or a platform exit that cannot be built: ``problem``)."""

    kind: str
    code: str = ""
    completion: Completion | None = None
    problem: str = ""


def exit_for(rater: Rater) -> Exit:
    session = rater.session
    if session.state == Session.State.EXPIRED:
        return Exit("expired")
    screened = session.state == Session.State.SCREENED_OUT
    kind = "screened_out" if screened else "complete"
    code = completion_code(rater, "screened_out") if screened else session.completion_code
    crowd = rater.study.crowd
    if crowd is None:
        return Exit(kind, code)
    code = (crowd.screened_out_code if screened else crowd.completion_code) or code  # Prolific's fixed codes
    try:
        return Exit(kind, code, completion(crowd, code, rater.platform_ids, screened_out=screened))
    except CrowdError as exc:  # e.g. an MTurk submit address no longer allowed by SR_MTURK_SUBMIT_HOSTS
        return Exit(kind, code, problem=f"{exc.key}: {exc.problem}")
