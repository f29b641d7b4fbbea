"""Latency of the researcher's dashboard and report-file requests, and the report build's time and memory.

    python benchmarks/dashboard_report.py --sizes paper 100000
    python benchmarks/dashboard_report.py --sizes 1000000 --dashboard-only
    python benchmarks/dashboard_report.py --sizes 1000000 --workdir /tmp/bench --insert-only
    python benchmarks/dashboard_report.py --sizes 1000000 --workdir /tmp/bench --build-only

Each size runs in a fresh process against a fresh scratch SQLite database, filled with bulk inserts
(not through the web): ``paper`` is the paper's design (26 raters, each rating all 1128 stimuli:
Set5 and Set14 in 12 versions, BSD100 in 9, every rater rating everything); a number N is a crowd
study of N ratings (sparse: 100 ratings a rater, 10 methods, N/50 images so each stimulus gets
about 5 ratings per 10^5 ratings; 2 gold items and 2 repeats in every rater's 100). Every rater has
one item left unrated, to add "a rating that arrived since" the report was built.

Rows: the dashboard page (``ratings:dashboard``, a staff client), a report PNG and CSV
(``ratings:report_file``) while the report is fresh and once a rating has arrived since, and the
report build itself (``reports.export_report`` with 2000 bootstrap replicates, the dashboard's) in
a child process of its own: seconds, and RSS before it and at its peak (``/proc/self/status``
VmRSS, and VmHWM reset just before the build).

``--workdir`` keeps each size's scratch database (``<workdir>/size-<N>/``) and reuses it when the
study is already there, so the insert (minutes at 10^6) is paid once: ``--insert-only`` fills it,
``--build-only`` then times the build alone, e.g. of two checkouts against one database.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
PAPER_METHODS = ("nearest", "bicubic", "srcnn", "selfexsr", "drcn", "espcn", "srresnet-mse", "srresnet-vgg22",
                 "srgan-mse", "srgan-vgg22", "srgan-vgg54", "hr")
CROWD_METHODS = ("nearest", "bicubic", "srcnn", "espcn", "srresnet-mse", "srresnet-vgg22", "srgan-mse",
                 "srgan-vgg22", "srgan-vgg54", "hr")
PER_CROWD_RATER = 100


def _status_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak since the last reset) of this process, from /proc/self/status."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # no /proc: peak of the process


def _reset_peak() -> None:
    """Start VmHWM again from the current RSS (Linux: 5 to clear_refs), so the peak is the build's."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _setup_django(workdir: Path) -> None:
    os.environ.update(DATABASE_URL=f"sqlite:///{workdir / 'bench.sqlite3'}", SECRET_KEY="bench-only",
                      MEDIA_ROOT=str(workdir / "media"), SR_COMPUTE_LPIPS="0", CELERY_BROKER_URL="",
                      DJANGO_SETTINGS_MODULE="mos_site.settings")
    sys.path.insert(0, str(REPO))
    import django

    django.setup()


def _design(size: str, rng: np.random.Generator) -> tuple[dict[str, tuple[int, tuple[str, ...]]], list[list[tuple]]]:
    """Datasets (images, methods) and, per rater, its items: (dataset, image, method, kind, expected)."""
    if size == "paper":
        datasets = {"Set5": (5, PAPER_METHODS), "Set14": (14, PAPER_METHODS), "BSD100": (100, PAPER_METHODS[:9])}
        stimuli = [(d, i, m) for d, (n, methods) in datasets.items() for i in range(n) for m in methods]
        items = []
        for _ in range(26):
            order = rng.permutation(len(stimuli))
            items.append([(*stimuli[k], "test", None) for k in order])
        return datasets, items
    n = int(size)
    raters = max(1, n // PER_CROWD_RATER)
    images = max(10, n // 50)
    datasets = {"crowd": (images, CROWD_METHODS)}
    n_stimuli = images * len(CROWD_METHODS)
    items = []
    for _ in range(raters):
        picks = rng.choice(n_stimuli, size=PER_CROWD_RATER - 4, replace=False)
        own = [("crowd", int(k) // len(CROWD_METHODS), CROWD_METHODS[int(k) % len(CROWD_METHODS)], "test", None)
               for k in picks]
        own += [own[0][:3] + ("repeat", None), own[1][:3] + ("repeat", None)]
        gold = rng.choice(images, size=2, replace=False)
        own += [("crowd", int(gold[0]), "nearest", "gold", 1), ("crowd", int(gold[1]), "hr", "gold", 5)]
        items.append(own)
    return datasets, items


def build_study(size: str, seed: int = 16) -> tuple[int, int]:
    """Bulk-insert the study ``bench``; returns (ratings, items left unrated)."""
    from django.db import transaction
    from django.utils import timezone

    from ratings.models import (
        Condition,
        Rater,
        Rating,
        Session,
        SessionItem,
        SourceImage,
        Stimulus,
        Study,
        StudyDataset,
    )

    rng = np.random.default_rng(seed)
    datasets, per_rater = _design(size, rng)
    text = f'name = "bench"\nseed = {seed}\n'
    now = timezone.now()
    with transaction.atomic():
        study = Study.objects.create(name="bench", title=f"benchmark {size}", seed=seed, config_text=text,
                                     config={"name": "bench", "seed": seed, "rating": {"calibration_images": 0}},
                                     state=Study.State.READY)
        methods = list(dict.fromkeys(m for _, ms in datasets.values() for m in ms))
        conditions = {m: Condition.objects.create(study=study, name=m, position=k,
                                                  kind="reference" if m == "hr" else "interpolation")
                      for k, m in enumerate(methods)}
        stimulus_pk: dict[tuple, int] = {}
        images, stimuli = [], []
        for position, (name, (n_images, ds_methods)) in enumerate(datasets.items()):
            dataset = StudyDataset.objects.create(study=study, name=name, folder="-", position=position)
            first = len(images) + 1
            images += [SourceImage(pk=first + i, dataset=dataset, name=f"img_{i:06d}", hr_path="-", hr_sha256="0" * 64,
                                   width=480, height=320) for i in range(n_images)]
            for i in range(n_images):
                for m in ds_methods:
                    pk = len(stimuli) + 1
                    stimulus_pk[(name, i, m)] = pk
                    stimuli.append(Stimulus(pk=pk, study=study, image_id=first + i, condition=conditions[m],
                                            public_id=f"s{pk:09d}", state=Stimulus.State.DONE, finished_at=now,
                                            psnr_y=20 + 10 * rng.random(), ssim_y=rng.random()))
        SourceImage.objects.bulk_create(images, batch_size=5000)
        Stimulus.objects.bulk_create(stimuli, batch_size=5000)
        raters = [Rater(pk=r + 1, study=study, label=f"r{r:05d}", token=f"t{r:09d}", source=Rater.Source.IMPORTED)
                  for r in range(len(per_rater))]
        Rater.objects.bulk_create(raters, batch_size=5000)
        Session.objects.bulk_create([Session(pk=r.pk, rater_id=r.pk, state=Session.State.RATING, started_at=now,
                                             position=len(per_rater[r.pk - 1]) - 1)
                                     for r in raters], batch_size=5000)
        item_pk = 0
        items, ratings = [], []
        true = {m: 1 + 4 * k / (len(methods) - 1) for k, m in enumerate(methods)}
        for r, own in enumerate(per_rater):
            bias = rng.normal(0, 0.3)
            for position, (d, i, m, kind, expected) in enumerate(own):
                item_pk += 1
                stimulus = stimulus_pk[(d, i, m)]
                items.append(SessionItem(pk=item_pk, session_id=r + 1, position=position, stimulus_id=stimulus,
                                         kind=kind, expected_score=expected))
                if position < len(own) - 1:  # the last item waits for "a rating that arrived since"
                    score = int(np.clip(np.rint(true[m] + bias + rng.normal(0, 0.7)), 1, 5))
                    ratings.append(Rating(pk=item_pk, item_id=item_pk, rater_id=r + 1, stimulus_id=stimulus, score=score,
                                          response_ms=int(rng.integers(800, 6000)), created_at=now))
            if len(items) >= 50_000:
                SessionItem.objects.bulk_create(items, batch_size=5000)
                Rating.objects.bulk_create(ratings, batch_size=5000)
                items, ratings = [], []
        SessionItem.objects.bulk_create(items, batch_size=5000)
        Rating.objects.bulk_create(ratings, batch_size=5000)
    return Rating.objects.count(), len(per_rater)


def _add_one_rating() -> None:
    from ratings.models import Rating, SessionItem

    item = SessionItem.objects.filter(rating__isnull=True).order_by("pk").first()
    Rating.objects.create(item=item, rater_id=item.session.rater_id, stimulus_id=item.stimulus_id, score=3, response_ms=2000)


def _timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def _build_served_report(study) -> None:
    """Whatever the code under test does to have a report to serve: the task if there is one, else
    the on-demand ``dashboard_report`` of the code before it."""
    try:
        from ratings import report_tasks
    except ImportError:
        from ratings import reports

        reports.dashboard_report(study)
        return
    report_tasks.build_report(study.pk)


def run_dashboard_only(client, dashboard: str, png: str, repeats: int) -> None:
    """No report built (a build at this size takes longer than this run may): the page and a file request."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        response = client.get(dashboard)
        times.append(time.perf_counter() - start)
        assert response.status_code == 200 and b"No report built yet" in response.content, response.status_code
    print(f"| dashboard page, no report built yet | {min(times):.2f} | {repeats} |", flush=True)
    start = time.perf_counter()
    assert client.get(png).status_code == 404
    print(f"| report PNG, no report built yet (404) | {time.perf_counter() - start:.2f} | 1 |", flush=True)


def run_size(size: str, workdir: Path, repeats: int, dashboard_only: bool = False, mode: str = "") -> None:
    _setup_django(workdir)
    from django.core.management import call_command
    from django.test import Client
    from django.urls import reverse

    from ratings.models import Study

    call_command("migrate", verbosity=0)
    if Study.objects.filter(name="bench").exists():  # a kept --workdir: the insert was done before
        from ratings.models import Rating

        n_ratings, n_raters = Rating.objects.count(), 0
        print(f"\n### {size}: {n_ratings} ratings, reused scratch database", flush=True)
    else:
        seconds, (n_ratings, n_raters) = _timed(lambda: build_study(size))
        print(f"\n### {size}: {n_ratings} ratings, {n_raters} raters (bulk insert {seconds:.0f} s)", flush=True)
    if mode == "insert-only":
        return
    if mode == "build-only":
        run_build(workdir)
        return
    print("| request | seconds (best of runs) | runs |\n|---|---:|---:|", flush=True)
    study = Study.objects.get(name="bench")
    from django.contrib.auth.models import User

    client = Client()
    client.force_login(User.objects.create_superuser("bench", "bench@example.org", "bench"))

    def get(url: str, want: int = 200) -> float:
        start = time.perf_counter()
        response = client.get(url)
        body = b"".join(response.streaming_content) if response.streaming else response.content
        seconds = time.perf_counter() - start
        assert response.status_code == want, (url, response.status_code, body[:300])
        return seconds

    def row(what: str, url: str, runs: int) -> None:
        times = [get(url) for _ in range(runs)]
        print(f"| {what} | {min(times):.2f} | {runs} |", flush=True)

    dashboard = reverse("ratings:dashboard", kwargs={"name": "bench"})
    png = reverse("ratings:report_file", kwargs={"name": "bench", "file": "mos.png"})
    csv = reverse("ratings:report_file", kwargs={"name": "bench", "file": "mos.csv"})
    if dashboard_only:
        run_dashboard_only(client, dashboard, png, repeats)
        return
    seconds, _ = _timed(lambda: _build_served_report(study))
    print(f"| first report build for the web (in this process) | {seconds:.2f} | 1 |", flush=True)
    row("dashboard page", dashboard, repeats)
    row("report PNG, report fresh", png, repeats)
    row("report CSV, report fresh", csv, repeats)
    _add_one_rating()
    row("report PNG, a rating arrived since", png, 1)
    row("report CSV, next request", csv, 1)
    row("dashboard page, a rating arrived since", dashboard, 1)
    # The build on its own, in a fresh process (peak RSS is per process).
    subprocess.run([sys.executable, __file__, "--build"], env=dict(os.environ, BENCH_WORKDIR=str(workdir)), check=True)


def run_build(workdir: Path) -> None:
    _setup_django(workdir)
    from ratings import reports
    from ratings.models import Study

    study = Study.objects.get(name="bench")
    _reset_peak()
    before = _status_mb("VmRSS")
    seconds, _ = _timed(lambda: reports.export_report(study, workdir / "export", n_boot=2000))
    peak = _status_mb("VmHWM")
    print(f"| report build (export_report, n_boot 2000, own process) | {seconds:.2f} | 1 |\n"
          f"build process RSS: {before:.0f} MB before the build (Django, pandas, torch loaded), peak during it "
          f"{peak:.0f} MB (+{peak - before:.0f} MB)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["paper", "100000"], help="'paper' or a number of ratings")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each fresh-report request (best is shown)")
    parser.add_argument("--dashboard-only", action="store_true",
                        help="build no report: time the dashboard page and a file request without one")
    parser.add_argument("--workdir", type=Path,
                        help="keep the scratch database here (one folder per size) and reuse it on the next run "
                             "instead of inserting again (the insert of 10^6 ratings takes minutes)")
    parser.add_argument("--build-only", action="store_const", const="build-only", dest="mode",
                        help="time only the report build (its own process) on the scratch database")
    parser.add_argument("--insert-only", action="store_const", const="insert-only", dest="mode",
                        help="only fill the scratch database (with --workdir, for later --build-only runs)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # the child process of one size
    parser.add_argument("--build", action="store_true", help=argparse.SUPPRESS)  # the build's own process
    args = parser.parse_args()
    if args.build:
        run_build(Path(os.environ["BENCH_WORKDIR"]))
        return
    if args.one:
        run_size(args.one, Path(os.environ["BENCH_WORKDIR"]), args.repeats, args.dashboard_only, args.mode or "")
        return
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    flags = [*(["--dashboard-only"] if args.dashboard_only else []), *([f"--{args.mode}"] if args.mode else [])]
    for size in args.sizes:
        with contextlib.ExitStack() as stack:
            if args.workdir:
                tmp = args.workdir.resolve() / f"size-{size}"
                tmp.mkdir(parents=True, exist_ok=True)
            else:
                tmp = stack.enter_context(tempfile.TemporaryDirectory())
            subprocess.run([sys.executable, __file__, "--one", size, "--repeats", str(args.repeats), *flags],
                           env=dict(os.environ, BENCH_WORKDIR=str(tmp)), check=True)
    print(f"load after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
