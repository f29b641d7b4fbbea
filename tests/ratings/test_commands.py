"""run_study, study_status and invite_raters as a researcher sees them (in-process, no broker)."""

from __future__ import annotations

import io
import json
import re
import shutil

import pytest
from django.core.management import CommandError, call_command

from ratings import sessions, studies
from ratings.models import Rater, Rating, Session, Stimulus, Study

pytestmark = pytest.mark.django_db

STUDY = """name = "cmd"
seed = 4
datasets = ["Set5"]
methods = ["nearest", "bicubic", "hr"]
[rating]
raters = 2
calibration_images = 1
"""


def run(*args):
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_run_study_makes_everything_prints_a_summary_and_resumes(study_file, media_root, weights_dir):
    path = study_file(STUDY)
    out = run("run_study", str(path))
    assert "created study cmd: 17 stimuli (17 new)" in out
    assert re.search(r"Set5\s+bicubic\s+5\s+28\.42\s+0\.8101", out)
    assert re.search(r"Set5\s+nearest\s+5\s+26\.25", out)
    assert "stimuli: 17 done, 0 to do, 0 failed" in out
    links = re.findall(r"r00\d: http://127\.0\.0\.1:8000/r/[\w-]+/", out)
    assert len(links) == 2 and Rater.objects.count() == 2
    assert "/join/" in out and "at most 6 raters join by it" in out  # 3 x raters = 2
    again = run("run_study", str(path))
    assert "resumed study cmd: 17 stimuli (0 new)" in again
    assert Stimulus.objects.count() == 17 and Rater.objects.count() == 2


def test_run_study_reports_a_bad_file_with_its_line(study_file, media_root):
    path = study_file(STUDY.replace('"bicubic"', '"bicubc"'))
    with pytest.raises(CommandError, match=r"line 4, key 'methods': unknown method 'bicubc'"):
        run("run_study", str(path))


def test_study_status_text_and_json(study_file, media_root, weights_dir):
    run("run_study", str(study_file(STUDY)))
    status = json.loads(run("study_status", "cmd", "--json"))
    assert status["stimuli"] == {"total": 17, "pending": 0, "queued": 0, "running": 0, "done": 17, "failed": 0}
    assert status["stimuli_per_method"]["hr"]["done"] == 6  # 5 test images + 1 calibration image
    assert status["raters"]["total"] == 2 and status["ratings"] == 0
    bicubic = next(m for m in status["metrics"] if m["method"] == "bicubic")
    assert bicubic["psnr_y"] == pytest.approx(28.4177, abs=1e-4)
    assert "study cmd (ready, seed 4)" in run("study_status", "cmd")
    with pytest.raises(CommandError, match="no study named 'nope' \\(studies: cmd\\)"):
        run("study_status", "nope")


def test_invite_raters_prints_one_link_per_line(study_file, media_root, weights_dir):
    run("run_study", str(study_file(STUDY)))
    out = run("invite_raters", "cmd", "--count", "3", "--base-url", "https://mos.example.org/")
    lines = out.strip().splitlines()
    assert len(lines) == 3
    tokens = [re.fullmatch(r"https://mos\.example\.org/r/([\w-]+)/", line).group(1) for line in lines]
    assert set(Rater.objects.filter(label__in=["r003", "r004", "r005"]).values_list("token", flat=True)) == set(tokens)
    with pytest.raises(CommandError, match="from 1 to"):
        run("invite_raters", "cmd", "--count", "0")


def test_invite_raters_links_start_with_site_url_and_open_the_raters_page(study_file, media_root, weights_dir,
                                                                          settings, client):
    """Without --base-url the links start with SITE_URL (catches the old hard-coded 127.0.0.1:8000
    default) and their path is the rater's page (catches a link built by hand that the URLconf no
    longer routes)."""
    run("run_study", str(study_file(STUDY)))
    settings.SITE_URL = "https://rate.example.org/mos"
    line = run("invite_raters", "cmd", "--count", "1").strip()
    rater = Rater.objects.get(label="r003")
    assert line == f"https://rate.example.org/mos/r/{rater.token}/"
    page = client.get(line.removeprefix("https://rate.example.org/mos"))
    assert page.status_code == 302 and page.url == f"/r/{rater.token}/start/"  # the rater's consent page


def test_admin_invitation_links_use_site_url_not_the_admins_host(rating_study, settings, admin_client):
    """The admin action's links are for raters: catches request.build_absolute_uri (the admin's host,
    here testserver) and a hand-built path."""
    settings.SITE_URL = "https://rate.example.org"
    response = admin_client.post("/admin/ratings/study/", {"action": "invite_five_raters",
                                                          "_selected_action": [rating_study.pk]}, follow=True)
    message = next(iter(response.context["messages"])).message
    tokens = Rater.objects.filter(study=rating_study).order_by("label").values_list("token", flat=True)
    assert len(tokens) == 5
    assert message == f"{rating_study.name}: " + ", ".join(f"https://rate.example.org/r/{t}/" for t in tokens)
    assert "testserver" not in message


def external_study(tmp_path, datasets_root, truncate="img_004"):
    """A study file with an external method whose image ``truncate`` is damaged (its stimulus fails)."""
    folder = tmp_path / "SRCNN"
    folder.mkdir()
    for hr in sorted((datasets_root / "Set5" / "x4").glob("*_HR.png")):
        shutil.copy(hr, folder / hr.name.replace("_HR", "_SRCNN"))
    bad = folder / f"{truncate}_SRF_4_SRCNN.png"
    bad.write_bytes(bad.read_bytes()[:2000])
    path = tmp_path / "ext.toml"
    path.write_text(f"""name = "ext"
seed = 3
datasets = ["Set5"]
methods = ["bicubic", {{name = "SRCNN", dir = "{folder}"}}]
[rating]
calibration_images = 0
""")
    return path


def test_run_study_with_failures_leaves_the_study_closed_until_they_are_accepted(tmp_path, datasets_root, media_root):
    path = external_study(tmp_path, datasets_root)
    out = run("run_study", str(path))
    assert "stimuli: 9 done, 0 to do, 1 failed" in out
    assert "study ext (incomplete: failed stimuli, not open to raters, seed 3)" in out
    assert "--accept-failures" in out
    assert Study.objects.get(name="ext").state == Study.State.GENERATING
    assert "incomplete" in run("study_status", "ext")
    assert json.loads(run("study_status", "ext", "--json"))["incomplete"] is True

    accepted = run("run_study", str(path), "--accept-failures")
    assert "study ext is open to raters without these 1 failed stimuli" in accepted
    assert "excluded Set5/img_004 [SRCNN]" in accepted
    assert "study ext (ready, seed 3)" in accepted
    study = Study.objects.get(name="ext")
    assert study.state == Study.State.READY
    session = sessions.start_session(studies.create_invitations(study, 1)[0])
    assert not session.items.filter(stimulus__state=Stimulus.State.FAILED).exists()
    assert session.items.count() == 9


def rate_one(study):
    """One real rating, through the rater's session."""
    rater = study.raters.order_by("label").first()
    session = sessions.start_session(rater)
    while session.state == Session.State.CALIBRATION:
        session = sessions.advance_calibration(rater, session.position)
    item = sessions.current_item(session)
    assert sessions.record_rating(rater, sessions.item_token(item), 4).stored


def test_adding_methods_or_datasets_after_ratings_is_refused(study_file, media_root, weights_dir):
    run("run_study", str(study_file(STUDY)))
    rate_one(Study.objects.get(name="cmd"))
    more_methods = study_file(STUDY.replace('"hr"]', '"hr", "srresnet-mse"]'), "more.toml")
    with pytest.raises(CommandError, match=r"study 'cmd' already has 1 rating; adding Set5/srresnet-mse"):
        run("run_study", str(more_methods))
    more_datasets = study_file(STUDY.replace('["Set5"]', '["Set5", "Set14"]'), "bigger.toml")
    with pytest.raises(CommandError, match=r"study 'cmd' already has 1 rating; adding Set14"):
        run("run_study", str(more_datasets))
    assert Stimulus.objects.count() == 17 and Rating.objects.count() == 1
    assert "resumed study cmd: 17 stimuli (0 new)" in run("run_study", str(study_file(STUDY)))


def test_a_study_file_with_a_billion_raters_is_refused_before_anything_is_written(study_file, media_root):
    """Catches unbounded counts: raters = 10**9 was accepted and run_study sat in one transaction."""
    path = study_file(STUDY.replace("raters = 2", "raters = 1000000000"))
    with pytest.raises(CommandError, match=r"rating\.raters.*at most 10,000"):
        run("run_study", str(path))
    assert not Study.objects.exists() and not Rater.objects.exists() and not Stimulus.objects.exists()
    assert not (media_root / "studies").exists()


def test_invitations_are_made_in_batches_of_their_own_transaction(rating_study, monkeypatch):
    """Catches one transaction around every invitation (it held the write lock for all of them)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    monkeypatch.setattr(studies, "INVITATION_BATCH", 4)
    with CaptureQueriesContext(connection) as queries:
        raters = studies.create_invitations(rating_study, 10)
    assert [r.label for r in raters] == [f"r{k:03d}" for k in range(1, 11)]
    assert Session.objects.filter(rater__in=raters).count() == 10
    # One (nested: the test's own transaction is outside) atomic block per batch of 4.
    assert sum(q["sql"].startswith("SAVEPOINT") for q in queries.captured_queries) == 3
    with pytest.raises(CommandError, match="from 1 to 10,000"):
        run("invite_raters", rating_study.name, "--count", "1000000000")


def test_study_status_counts_sessions_and_items_by_state(datasets_root, media_root):
    """One session of each state. Catches an expired or screened-out session counted as in progress
    or complete, unrated items of ended sessions counted as waiting (not returned), ratings of a
    screened-out session counted toward the target, and a balance line computed another way than
    from the stored ratings (recounted here from the rows)."""
    from collections import Counter

    from .crowd_study import make_crowd_study, one_session_of_each_state

    study = make_crowd_study(datasets_root)
    one_session_of_each_state(study)
    status = json.loads(run("study_status", "crowd", "--json"))
    assert status["sessions"] == {"not_started": 1, "in_progress": 1, "complete": 1, "expired": 1, "screened_out": 1}
    # 4 sessions x 5 items; rated 5 + 1 + 2 + 1; waiting: the live one's 4; returned: 3 expired + 4 screened out
    assert status["items"] == {"assigned": 20, "rated": 9, "waiting": 4, "returned": 7, "discarded": 1, "counted": 12}
    kept = Counter(Rating.objects.filter(rater__study=study).exclude(
        item__session__state=Session.State.SCREENED_OUT).values_list("stimulus_id", flat=True))
    assert sum(kept.values()) == 8
    stimuli = Stimulus.objects.filter(study=study, image__dataset__role="test").values_list("pk", flat=True)
    at_target = sum(kept[pk] >= 2 for pk in stimuli)
    missing = sum(max(0, 2 - kept[pk]) for pk in stimuli)
    assert status["balance"]["stimuli"] == 15 and status["balance"]["target"] == 2
    assert (status["balance"]["at_target"], status["balance"]["ratings_missing"]) == (at_target, missing)
    assert status["raters"]["total"] == 5 and status["ratings"] == 9  # the existing keys stay
    text = run("study_status", "crowd")
    assert "sessions: 1 in progress, 1 complete, 1 expired, 1 screened out, 1 not started" in text
    assert "items: 20 assigned, 9 rated, 4 waiting in live sessions, 7 returned to the pool" in text
    assert f"balance: {at_target} of 15 stimuli have their 2 ratings" in text


def test_study_status_expires_stalled_sessions_before_counting(datasets_root, media_root):
    """Catches study_status calling a session idle for hours 'in progress' (nothing else may have run
    the expiry since: no enrolment, no scheduled task)."""
    from django.utils import timezone

    from .crowd_study import STALL, idle_since, make_crowd_study, worker

    study = make_crowd_study(datasets_root)
    idle_since(worker(study, "gone-quiet"), timezone.now() - 2 * STALL)
    status = json.loads(run("study_status", "crowd", "--json"))
    assert (status["sessions"]["in_progress"], status["sessions"]["expired"]) == (0, 1)
    assert status["items"]["returned"] == 5
