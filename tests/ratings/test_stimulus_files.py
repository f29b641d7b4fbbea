"""Stimulus files: paths from ids and slugs under MEDIA_ROOT, one length per image, and serving only
a rater's own, unaltered files."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
import torch

from ratings import dispatch, stimulus_files, studies
from ratings.models import Session, Stimulus, Study
from ratings.study_file import parse_study_file
from sr_models.images import read_image, write_png
from sr_models.inference import sha256_file

from .conftest import RATING_STUDY

pytestmark = pytest.mark.django_db


def _study_with_dotdot_dataset(root: Path, datasets_root: Path, name: str, flip: bool):
    """A study in ``root/<name>/`` rating ``../ds1`` with an external method EXT of its own."""
    folder, ext = root / name, root / name / "ext"
    ext.mkdir(parents=True)
    for pair in sorted((root / "ds1").glob("*_HR.png")):
        hr = read_image(pair)
        write_png(hr.flip(-1) if flip else hr, ext / pair.name.replace("_SRF_4_HR", ""))
    text = (f'name = "{name}"\nseed = 1\ndatasets = ["../ds1"]\n'
            f'methods = ["bicubic", {{name = "EXT", dir = "ext"}}]\n[rating]\ncalibration_images = 0\n')
    return parse_study_file(text, f"{name}.toml", datasets_root=datasets_root, base_dir=folder)


def test_two_studies_with_dotdot_datasets_and_same_named_external_methods_keep_their_own_files(
        tmp_path, datasets_root, media_root):
    """Catches paths built from the raw dataset string: studies/<study>/../ds1/EXT/... is the same
    file, studies/ds1/EXT/..., for both studies, and the first study's stored SHA-256 went stale."""
    (tmp_path / "ds1").mkdir()
    for name in ("img_001_SRF_4_HR.png", "img_001_SRF_4_LR.png", "img_002_SRF_4_HR.png", "img_002_SRF_4_LR.png"):
        shutil.copy(datasets_root / "Set5" / "x4" / name, tmp_path / "ds1" / name)
    made = {}
    for name, flip in (("first", False), ("second", True)):
        study = studies.create_or_resume_study(_study_with_dotdot_dataset(tmp_path, datasets_root, name, flip)).study
        dispatch.enqueue_pending(study)
        made[name] = list(Stimulus.objects.filter(study=study, condition__name="EXT").select_related("image"))
    files = set()
    root = Path(media_root).resolve()
    for name, stimuli in made.items():
        for s in stimuli:
            assert s.state == Stimulus.State.DONE, s.error
            path = stimulus_files.media_file(s.file)
            assert root in path.parents and ".." not in s.file
            assert sha256_file(path) == s.sha256  # still its own file after the other study was made
            expected = read_image(tmp_path / name / "ext" / f"{s.image.name}.png")
            assert torch.equal(read_image(path), expected)
            files.add(path)
    assert len(files) == 4
    assert not (root / "studies" / "ds1").exists() and not list((tmp_path / "ds1").glob("EXT*"))


def test_paths_outside_media_root_are_refused(media_root):
    with pytest.raises(stimulus_files.UnsafeMediaPath):
        stimulus_files.media_file("studies/../../escape.png")
    with pytest.raises(stimulus_files.UnsafeMediaPath):
        stimulus_files.media_file("/etc/passwd")
    assert stimulus_files.media_file("studies/1-a/x.png").name == "x.png"


def _consented(client, study):
    rater = studies.create_invitations(study, 1)[0]
    client.post(f"/r/{rater.token}/start/", {"consent": "yes", "device_pixel_ratio": "1", "viewport": "1366x768"})
    return rater


def test_every_version_of_an_image_serves_the_same_content_length(client, rating_study):
    """Catches unpadded files: on Set5 the byte length ranked nearest < bicubic < HR."""
    rater = _consented(client, rating_study)
    lengths: dict[int, set[int]] = {}
    items = Session.objects.get(rater=rater).items.select_related("stimulus")
    for item in items:
        response = client.get(f"/r/{rater.token}/img/{item.stimulus.public_id}")
        assert response.status_code == 200
        body = b"".join(response.streaming_content)
        assert int(response["Content-Length"]) == len(body)
        lengths.setdefault(item.stimulus.image_id, set()).add(len(body))
    assert len(lengths) >= 5 and all(len(v) == 1 for v in lengths.values()), lengths
    # The padding changes no pixel: the served HR file decodes to the dataset's HR image.
    hr = Stimulus.objects.get(study=rating_study, condition__name="hr", image__name="img_001")
    assert torch.equal(read_image(stimulus_files.media_file(hr.file)), read_image(hr.image.hr_path))
    assert sha256_file(stimulus_files.media_file(hr.file)) == hr.sha256


def test_equalising_again_after_a_new_method_pads_every_version_afresh(rating_study):
    first = {s.pk: Path(stimulus_files.media_file(s.file)).stat().st_size
             for s in Stimulus.objects.filter(study=rating_study)}
    assert stimulus_files.equalise_lengths(rating_study.pk) == 0  # a rerun rewrites nothing
    s = Stimulus.objects.filter(study=rating_study, condition__name="nearest").first()
    path = stimulus_files.media_file(s.file)
    big = torch.randint(0, 256, (3, s.height, s.width), dtype=torch.uint8)  # noise: the largest PNG
    write_png(big, path)
    Stimulus.objects.filter(pk=s.pk).update(sha256=sha256_file(path))
    assert stimulus_files.equalise_lengths(rating_study.pk) >= 2
    versions = Stimulus.objects.filter(image=s.image)
    sizes = {stimulus_files.media_file(v.file).stat().st_size for v in versions}
    assert len(sizes) == 1 and sizes.pop() > first[s.pk]
    assert all(sha256_file(stimulus_files.media_file(v.file)) == v.sha256 for v in versions)


def test_a_file_changed_on_disk_is_logged_and_never_served(client, rating_study, caplog):
    rater = _consented(client, rating_study)
    item = Session.objects.get(rater=rater).items.select_related("stimulus").first()
    url = f"/r/{rater.token}/img/{item.stimulus.public_id}"
    assert client.get(url).status_code == 200
    path = stimulus_files.media_file(item.stimulus.file)
    data = bytearray(path.read_bytes())
    data[-20] ^= 0xFF
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.ERROR, logger="ratings.stimulus_files"):
        assert client.get(url).status_code == 404
    assert "does not match its stored SHA-256" in caplog.text


def test_a_rater_fetches_only_the_stimuli_of_their_own_assignment(client, datasets_root, media_root):
    """Catches serving any stimulus of the rater's study: before consent and outside a balanced subset."""
    text = RATING_STUDY.replace('name = "rating"', 'name = "subset"').replace(
        "[rating]", '[rating]\nassignment = "balanced"\nratings_per_stimulus = 1\nitems_per_rater = 3')
    study = studies.create_or_resume_study(parse_study_file(text, "s.toml", datasets_root=datasets_root)).study
    dispatch.enqueue_pending(study)
    assert Study.objects.get(pk=study.pk).state == Study.State.READY
    waiting = studies.create_invitations(study, 1)[0]
    some = Stimulus.objects.filter(study=study).first()
    assert client.get(f"/r/{waiting.token}/img/{some.public_id}").status_code == 404  # not drawn yet
    rater = _consented(client, study)
    mine = set(Session.objects.get(rater=rater).items.values_list("stimulus__public_id", flat=True))
    others = Stimulus.objects.filter(study=study).exclude(public_id__in=mine)
    assert mine and others.exists()
    for public_id in mine:
        assert client.get(f"/r/{rater.token}/img/{public_id}").status_code == 200
    for s in others:
        assert client.get(f"/r/{rater.token}/img/{s.public_id}").status_code == 404
