"""Real Celery worker processes on a real Redis: stimuli made once, even when a worker is SIGKILLed,
and two run_study processes at once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ratings import dispatch, generation, studies
from ratings.models import Stimulus, Study
from ratings.study_file import parse_study_file
from ratings.tasks import generate_stimulus_task
from sr_models.inference import sha256_file

from .conftest import REPO, _database_env, wait_for

pytestmark = [pytest.mark.servers, pytest.mark.django_db(transaction=True)]


def test_a_worker_process_makes_every_stimulus(start_worker, small_config, media_root):
    study = studies.create_or_resume_study(small_config).study
    worker = start_worker("alpha")
    assert dispatch.enqueue_pending(study) == 28
    wait_for(lambda: Stimulus.objects.filter(study=study, state=Stimulus.State.DONE).count() == 28, 180,
             "all 28 stimuli to be made by the worker")
    # Then the study opens, once the last worker has padded every version of an image to one length.
    wait_for(lambda: Study.objects.filter(pk=study.pk, state=Study.State.READY).exists(), 60, "the study to open")
    workers = set(Stimulus.objects.filter(study=study).values_list("worker", flat=True))
    assert workers == {f"alpha@{os.uname().nodename}"}
    assert set(Stimulus.objects.filter(study=study).values_list("attempts", flat=True)) == {1}
    for s in Stimulus.objects.filter(study=study):
        assert sha256_file(Path(media_root) / s.file) == s.sha256
    assert "generate_stimulus_task" in worker.log.read_text()


@pytest.fixture
def big_image_dataset(tmp_path, baby_pair):
    """One 240x240 LR image: SRResNet needs several seconds for it on one CPU thread."""
    _, lr = baby_pair
    lr_img = np.tile(lr.permute(1, 2, 0).numpy(), (2, 2, 1))[:240, :240]
    folder = tmp_path / "big"
    folder.mkdir()
    Image.fromarray(lr_img).save(folder / "big_LR.png")
    Image.fromarray(np.kron(lr_img, np.ones((4, 4, 1), np.uint8))).save(folder / "big_HR.png")
    return folder


def test_a_worker_killed_mid_task_leaves_no_partial_file_and_another_finishes(
    start_worker, big_image_dataset, media_root, weights_dir, datasets_root
):
    text = f"""name = "kill"
seed = 1
datasets = ["{big_image_dataset}"]
methods = ["srresnet-mse"]
[rating]
calibration_images = 0
"""
    study = studies.create_or_resume_study(parse_study_file(text, "k.toml", datasets_root=datasets_root)).study
    stimulus = Stimulus.objects.get(study=study)
    doomed = start_worker("doomed")
    dispatch.enqueue_pending(study)
    wait_for(lambda: Stimulus.objects.filter(pk=stimulus.pk, state=Stimulus.State.RUNNING,
                                             worker__startswith="doomed@").exists(), 60, "the task to start")
    doomed.kill()
    folder = Path(media_root) / "studies" / f"{study.pk}-kill"
    assert not any(p.is_file() for p in folder.rglob("*")) if folder.exists() else True

    start_worker("rescuer")
    wait_for(lambda: Stimulus.objects.filter(pk=stimulus.pk, state=Stimulus.State.DONE).exists(), 120,
             "the redelivered task to finish on the other worker")
    # The file is final once the study opens: the last worker pads every version of an image first.
    wait_for(lambda: Study.objects.filter(pk=study.pk, state=Study.State.READY).exists(), 60, "the study to open")
    stimulus.refresh_from_db()
    assert stimulus.worker.startswith("rescuer@")
    assert stimulus.attempts == 2
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert files == [Path(media_root) / stimulus.file]  # one complete file, no temporaries
    assert sha256_file(files[0]) == stimulus.sha256
    assert Stimulus.objects.filter(study=study).count() == 1


def test_two_run_study_processes_at_once_make_each_stimulus_once(study_file, media_root, weights_dir, settings):
    path = study_file("""name = "twice"
seed = 5
datasets = ["Set5", "Set14"]
methods = ["nearest", "bicubic", "hr"]
[rating]
calibration_images = 2
""")
    env = dict(os.environ, MEDIA_ROOT=str(media_root), SR_WEIGHTS_DIR=str(weights_dir), OMP_NUM_THREADS="1",
               CELERY_BROKER_URL="", **_database_env())
    cmd = [sys.executable, "manage.py", "run_study", str(path), "-v", "0"]
    runs = [subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for _ in range(2)]
    outputs = [run.communicate(timeout=300)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    stimuli = Stimulus.objects.filter(study__name="twice")
    assert stimuli.count() == (5 + 14) * 3 + 2 * 2
    assert set(stimuli.values_list("state", flat=True)) == {Stimulus.State.DONE}
    assert set(stimuli.values_list("attempts", flat=True)) == {1}  # nothing made twice
    twice = Study.objects.get(name="twice")
    files = [p for p in (Path(media_root) / "studies" / f"{twice.pk}-twice").rglob("*") if p.is_file()]
    assert len(files) == stimuli.count()


def test_a_worker_fails_a_stimulus_whose_workers_died_max_attempts_times(start_worker, media_root, datasets_root):
    text = """name = "deaths"
seed = 1
datasets = ["Set5"]
methods = ["bicubic"]
[rating]
calibration_images = 0
"""
    study = studies.create_or_resume_study(parse_study_file(text, "d.toml", datasets_root=datasets_root)).study
    doomed = Stimulus.objects.filter(study=study).order_by("pk").first()
    # Its task's workers were killed MAX_ATTEMPTS times (each start counted); Redis delivers the message again.
    Stimulus.objects.filter(pk=doomed.pk).update(state=Stimulus.State.RUNNING, task_id="doomed-task",
                                                 attempts=generation.MAX_ATTEMPTS, worker="gpu@killed-host")
    assert dispatch.enqueue_pending(study) == 4
    generate_stimulus_task.apply_async(args=[doomed.pk], task_id="doomed-task", queue="cpu")
    start_worker("alpha", queues="cpu")
    wait_for(lambda: Stimulus.objects.filter(study=study, state__in=[Stimulus.State.DONE, Stimulus.State.FAILED])
             .count() == 5, 120, "the five stimuli to be finished")
    doomed.refresh_from_db()
    assert doomed.state == Stimulus.State.FAILED and doomed.attempts == generation.MAX_ATTEMPTS
    assert f"died {generation.MAX_ATTEMPTS} times" in doomed.error and not doomed.file
    assert Stimulus.objects.filter(study=study, state=Stimulus.State.DONE).count() == 4
    study.refresh_from_db()
    assert study.state == Study.State.GENERATING  # not opened with a hole in it
