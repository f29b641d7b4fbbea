"""Fixtures for the Django side: media and weights folders, study files, and the real servers.

Redis and PostgreSQL are real servers started by ``bin/services`` (``bin/test`` does it and exports
``TEST_REDIS_URL`` / ``TEST_DATABASE_URL``); tests that need them fail, loudly, when they are absent.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def no_lpips_by_default(settings, monkeypatch):
    """LPIPS costs a VGG16 pass per stimulus; only the tests about it turn it on."""
    settings.SR_COMPUTE_LPIPS = False
    monkeypatch.setenv("SR_COMPUTE_LPIPS", "0")  # for worker and run_study processes


@pytest.fixture(autouse=True)
def empty_cache():
    """The enrolment rate limit counts in Django's cache: every test starts from none."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def media_root(tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def write_fake_weights(folder: Path, variants=("srresnet-mse", "srgan-vgg54")) -> Path:
    """Randomly initialised generators with model cards: the pipeline, not the quality, is tested."""
    from sr_models.inference import save_generator, sha256_file
    from sr_models.networks import SRResNet

    folder.mkdir(parents=True, exist_ok=True)
    for k, variant in enumerate(variants):
        torch.manual_seed(k)
        path = save_generator(SRResNet().eval(), folder / f"{variant}.safetensors", {"variant": variant})
        (folder / f"{variant}.json").write_text(json.dumps({"variant": variant, "sha256": sha256_file(path), "test": True}))
    return folder


@pytest.fixture(scope="session")
def fake_weights_dir(tmp_path_factory) -> Path:
    return write_fake_weights(tmp_path_factory.mktemp("weights"))


@pytest.fixture
def weights_dir(fake_weights_dir, settings):
    settings.SR_WEIGHTS_DIR = fake_weights_dir
    return fake_weights_dir


@pytest.fixture
def study_file(tmp_path):
    """Write a study file from keyword arguments (TOML text) and return its path."""

    def make(text: str, name: str = "study.toml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return make


SMALL_STUDY = """
name = "small"
seed = 7
datasets = ["Set5"]
methods = ["nearest", "bicubic", "srresnet-mse", "hr"]

[rating]
raters = 2
calibration_images = 2
gold_items = 2

[rating.repeats]
dataset = "Set5"
method = "bicubic"
images = 2
"""


@pytest.fixture
def small_config(datasets_root, weights_dir):
    from ratings.study_file import parse_study_file

    return parse_study_file(SMALL_STUDY, "small.toml", datasets_root=datasets_root)


RATING_STUDY = """
name = "rating"
seed = 7
datasets = ["Set5"]
methods = ["nearest", "bicubic", "hr"]

[rating]
calibration_images = 2
gold_items = 2

[rating.repeats]
dataset = "Set5"
method = "bicubic"
images = 2
"""


def ready_study(text: str, datasets_root):
    """The study of a study file, set up and with every stimulus made in-process (ready for raters)."""
    from ratings import dispatch, studies
    from ratings.models import Study
    from ratings.study_file import parse_study_file

    study = studies.create_or_resume_study(parse_study_file(text, "study.toml", datasets_root=datasets_root)).study
    dispatch.enqueue_pending(study)
    study.refresh_from_db()
    assert study.state == Study.State.READY
    return study


@pytest.fixture
def rating_study(datasets_root, media_root):
    """A study ready for raters: 15 Set5 stimuli, 2 calibration images, 2 gold items, 2 repeats."""
    return ready_study(RATING_STUDY, datasets_root)


# -- real servers ---------------------------------------------------------------------------------
def _require(var: str) -> str:
    value = os.environ.get(var)
    if not value:
        pytest.fail(f"{var} is not set: start the test servers with `eval \"$(bin/services)\"` (bin/test does it)")
    return value


@pytest.fixture(scope="session")
def redis_url() -> str:
    import redis

    url = _require("TEST_REDIS_URL").rsplit("/", 1)[0] + "/5"  # a database of our own
    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"Redis at {url} does not answer ({exc}); run bin/services")
    return url


@pytest.fixture
def broker(redis_url, settings):
    """Send tasks to the real Redis instead of running them in-process; restored afterwards."""
    import redis

    from mos_site.celery import app

    redis.Redis.from_url(redis_url).flushdb()
    changed = {"broker_url": redis_url, "result_backend": redis_url, "task_always_eager": False,
               "broker_transport_options": {"visibility_timeout": VISIBILITY_TIMEOUT}}
    saved = {key: app.conf[key] for key in changed}
    app.conf.update(changed)
    _drop_connection_pools(app)
    yield redis_url
    app.conf.update(saved)
    _drop_connection_pools(app)


def _drop_connection_pools(app) -> None:
    """Forget connections and producers made for another broker (Celery caches both)."""
    app._pool = None
    if "amqp" in app.__dict__:
        app.amqp._producer_pool = None


# Short, so a message taken by a killed worker comes back within the test.
VISIBILITY_TIMEOUT = 6


def _database_env() -> dict[str, str]:
    from django.db import connection

    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return {"SQLITE_PATH": str(s["NAME"]), "DATABASE_URL": ""}
    return {"DATABASE_URL": f"postgres://{s['USER']}@{s['HOST']}:{s['PORT']}/{s['NAME']}"}


class WorkerProcess:
    def __init__(self, name: str, popen: subprocess.Popen, log: Path):
        self.name, self.popen, self.log = name, popen, log

    def kill(self) -> None:
        os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(10)

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def start_worker(broker, settings, tmp_path):
    """Start ``celery worker`` processes against the test database, Redis and media folder."""
    workers: list[WorkerProcess] = []

    def start(name: str, queues: str = "gpu,cpu", pool: str = "solo") -> WorkerProcess:
        env = dict(os.environ)
        env.update(_database_env())
        env.update(
            CELERY_BROKER_URL=broker,
            CELERY_VISIBILITY_TIMEOUT=str(VISIBILITY_TIMEOUT),
            MEDIA_ROOT=str(settings.MEDIA_ROOT),
            SR_WEIGHTS_DIR=str(settings.SR_WEIGHTS_DIR),
            SR_DATASETS_ROOT=str(settings.SR_DATASETS_ROOT),
            OMP_NUM_THREADS="1",
            PYTHONUNBUFFERED="1",
        )
        log = tmp_path / f"worker-{name}.log"
        popen = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "mos_site", "worker", "-n", f"{name}@%h", "-Q", queues,
             "--pool", pool, "--concurrency", "1", "--loglevel", "INFO", "--without-gossip", "--without-mingle"],
            cwd=REPO, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        worker = WorkerProcess(name, popen, log)
        workers.append(worker)
        deadline = time.monotonic() + 60
        while "ready." not in log.read_text():
            if popen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker {name} did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        return worker

    yield start
    for worker in workers:
        worker.stop()


def wait_for(predicate, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


# -- Chromium (the browser tests) -------------------------------------------------------------------
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
ARTIFACTS = REPO / "test-artifacts" / "browser"  # screenshots of the browser tests, looked at by people


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: bin/services installs it (apt-get install chromium)")
    # Playwright's sync API keeps an asyncio loop in this thread; the ORM calls in these tests are
    # ordinary synchronous calls between browser steps, which Django must be told to allow.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield b
            b.close()
    finally:
        del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]


@pytest.fixture
def page_factory(browser):
    contexts = []

    def make(width=1366, height=768, scale=1.0):
        context = browser.new_context(viewport={"width": width, "height": height}, device_scale_factor=scale)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


def shot(page, name):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
