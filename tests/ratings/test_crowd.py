"""Crowd platforms' conventions: the [crowd] table, arrival URLs, exits, the link to paste (no database)."""

from __future__ import annotations

import pytest

from ratings import crowd
from ratings.crowd import CrowdError, arrival, completion, parse_crowd, study_link


def test_prolific_defaults_and_exits():
    """Catches the code pasted unquoted into the URL, and screened-out workers sent to the completion
    URL when a distinct one is given."""
    config = parse_crowd({"platform": "prolific",
                          "screened_out_url": "https://app.prolific.com/submissions/complete?cc=SCREEN{code}"})
    assert config.completion_url == crowd.PROLIFIC_COMPLETE
    came = arrival(config, {"PROLIFIC_PID": " 5f3c ", "STUDY_ID": "s1", "SESSION_ID": "x9"})
    assert (came.worker_id, came.ids, came.preview) == ("5f3c", {"STUDY_ID": "s1", "SESSION_ID": "x9"}, False)
    done = completion(config, "AB 12&x", came.ids)
    assert (done.method, done.url) == ("redirect", "https://app.prolific.com/submissions/complete?cc=AB%2012%26x")
    out = completion(config, "C0DE", came.ids, screened_out=True)
    assert out.url.endswith("cc=SCREENC0DE")
    assert study_link(config, "https://lab.example/join/tok/") == (
        "https://lab.example/join/tok/?PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}"
        "&SESSION_ID={{%SESSION_ID%}}")


def test_mturk_preview_enrols_nobody_and_submits_only_to_mturk(settings):
    """Preview (no assignment) gives no worker; the submit address must be MTurk's own - a link that
    names another host would receive the completion code. Catches a check on the host's suffix only."""
    config = parse_crowd({"platform": "mturk"})
    assert arrival(config, {"assignmentId": crowd.MTURK_PREVIEW, "hitId": "h"}).preview
    assert arrival(config, {}).preview
    came = arrival(config, {"assignmentId": "A1", "hitId": "H1", "workerId": "W1",
                            "turkSubmitTo": "https://workersandbox.mturk.com"})
    done = completion(config, "CODE", came.ids)
    assert (done.method, done.url, done.fields) == (
        "post", "https://workersandbox.mturk.com/mturk/externalSubmit", {"assignmentId": "A1", "completion_code": "CODE"})
    for bad in ("https://evil.example", "https://www.mturk.com.evil.example", "http://www.mturk.com",
                "https://www.mturk.com/somewhere",
                # urlsplit's host is www.mturk.com in these, a browser's is evil.example (or user info)
                "https://evil.example\\@www.mturk.com", "https://user@www.mturk.com", "https://www.mturk.com:x",
                "https://www.mturk.com?x=1", "https://www.mturk.com#x"):
        with pytest.raises(CrowdError, match="turkSubmitTo"):
            arrival(config, {"assignmentId": "A1", "workerId": "W1", "turkSubmitTo": bad})
    settings.SR_MTURK_SUBMIT_HOSTS = ("127.0.0.1:8765",)
    local = arrival(config, {"assignmentId": "A1", "workerId": "W1", "turkSubmitTo": "http://127.0.0.1:8765"})
    assert completion(config, "C", local.ids).url == "http://127.0.0.1:8765/mturk/externalSubmit"


def test_generic_platform_uses_its_parameter():
    config = parse_crowd({"platform": "generic", "worker_param": "uid",
                          "completion_url": "https://panel.example/done?c={code}"})
    assert arrival(config, {"uid": "u-7"}).worker_id == "u-7"
    with pytest.raises(CrowdError, match="uid"):
        arrival(config, {"worker_id": "u-7"})
    assert study_link(config, "https://lab/join/t/") == "https://lab/join/t/?uid=WORKER_ID"


@pytest.mark.parametrize("table, key", [
    ({"platform": "qualtrics"}, "crowd.platform"),
    ({"platform": "prolific", "completion_url": "http://app.prolific.com/?cc={code}"}, "crowd.completion_url"),
    ({"platform": "prolific", "completion_url": "https://app.prolific.com/done"}, "crowd.completion_url"),
    ({"platform": "prolific", "completion_url": "https://x/?cc={code}&{other}"}, "crowd.completion_url"),
    ({"platform": "prolific", "completion_url": "https://x/?cc={code}\"><script>"}, "crowd.completion_url"),
    ({"platform": "generic", "completion_url": "https://x/?c={code}"}, "crowd.worker_param"),
    ({"platform": "mturk", "completion_url": "https://x/?c={code}"}, "crowd.completion_url"),
    ({"platform": "prolific", "stall_minutes": 0}, "crowd.stall_minutes"),
    ({"platform": "prolific", "complete_url": "https://x/{code}"}, "crowd.complete_url"),
    ({"platform": "prolific", "completion_code": "C1 2<b>"}, "crowd.completion_code"),
    ({"platform": "prolific", "screened_out_code": "X" * 41}, "crowd.screened_out_code"),
    ({"platform": "mturk", "completion_code": "C1A2B3"}, "crowd.completion_code"),
])
def test_bad_crowd_tables_name_the_key(table, key):
    with pytest.raises(CrowdError) as caught:
        parse_crowd(table)
    assert caught.value.key == key


def test_platform_ids_never_collide():
    assert crowd.platform_worker_id("prolific", "abc") != crowd.platform_worker_id("mturk", "abc")


@pytest.mark.parametrize("worker", ["5f3c,50", "5f3c 5f3d", "5f3c\n5f3d", '5f3c"', "<b>x</b>"])
def test_a_worker_id_that_would_split_a_bulk_file_line_is_refused(worker):
    """Catches ids taken as they come: "<accomplice>,50" would become a bonus line of its own in the
    Prolific bonus file, "a b" two ids of the approve list."""
    with pytest.raises(CrowdError, match="not a worker id"):
        arrival(parse_crowd({"platform": "prolific"}), {"PROLIFIC_PID": worker})

