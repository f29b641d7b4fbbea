"""Time and peak memory of ``import_ratings`` on a generated ratings CSV, into a scratch SQLite database.

    python benchmarks/import_ratings.py --ratings 100000
    python benchmarks/import_ratings.py --ratings 1000000 --raters 100

The file has ``--raters`` raters, each rating every one of ``ratings / raters`` stimuli of one
dataset that is not a benchmark set (no HR files are looked up), with ``created_at`` and
``response_ms`` columns. Each size runs in a fresh process (peak RSS is per process) against a fresh
SQLite file. Prints one row per size: seconds of the import call, peak RSS of the process before
the import (Django, pandas and torch loaded) and after it, from ``resource.getrusage``.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def write_csv(path: Path, n_ratings: int, n_raters: int) -> None:
    per_rater = n_ratings // n_raters
    methods = ("nearest", "bicubic", "srresnet-mse", "srgan-vgg54", "hr")
    with open(path, "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["rater", "dataset", "image", "method", "score", "created_at", "response_ms"])
        for r in range(n_raters):
            for k in range(per_rater):
                out.writerow([f"rater{r:04d}", "lab-images", f"img_{k // len(methods):06d}", methods[k % len(methods)],
                              1 + (r + k) % 5, "2017-07-21T10:00:00Z", 1000 + k % 5000])


def run_one(n_ratings: int, n_raters: int, workdir: Path) -> None:
    """In this (fresh) process: migrate a scratch database, import, print one table row."""
    os.environ.update(DATABASE_URL=f"sqlite:///{workdir / 'bench.sqlite3'}", SECRET_KEY="bench-only",
                      MEDIA_ROOT=str(workdir / "media"), SR_COMPUTE_LPIPS="0", CELERY_BROKER_URL="",
                      DJANGO_SETTINGS_MODULE="mos_site.settings")
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.core.management import call_command

    from ratings.importing import import_ratings

    path = workdir / "ratings.csv"
    write_csv(path, n_ratings, n_raters)
    call_command("migrate", verbosity=0)
    before = _peak_mb()
    start = time.perf_counter()
    result = import_ratings(path, "bench")
    seconds = time.perf_counter() - start
    assert result.ratings == n_ratings, result
    size_mb = path.stat().st_size / 2**20
    print(f"| {n_ratings} | {n_raters} | {size_mb:.1f} | {seconds:.1f} | {before:.0f} | {_peak_mb():.0f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ratings", type=int, nargs="+", default=[100_000])
    parser.add_argument("--raters", type=int, default=10)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.one:
        run_one(args.ratings[0], args.raters, Path(os.environ["BENCH_WORKDIR"]))
        return
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    print("| ratings | raters | CSV MB | import s | peak RSS before MB | peak RSS after MB |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n in args.ratings:
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([sys.executable, __file__, "--one", "--ratings", str(n), "--raters", str(args.raters)],
                           env=dict(os.environ, BENCH_WORKDIR=tmp), check=True)
    print(f"load after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
