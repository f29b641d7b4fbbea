"""Wall time to generate a study's stimuli: in-process (no broker) and with 1 or 2 Celery worker
processes on Redis, PostgreSQL as the database.

    eval "$(bin/services)"
    python benchmarks/generate_study.py --studies studies/demo.toml studies/srgan_paper.toml --workers 0 1 2

``--workers 0`` is the in-process path (``run_study`` without a broker). Each run starts from an
empty database and media folder. Network stimuli use the shipped weights when present, otherwise
randomly initialised generators of the same architecture (the time does not depend on the values;
the output says which). LPIPS is computed for every stimulus, as by default.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

BENCH_DB = "sr_mos_bench_gen"


def weights_folder(tmp: Path) -> tuple[Path, str]:
    shipped = REPO / "sr_models" / "weights"
    needed = ("srresnet-mse", "srresnet-vgg22", "srgan-mse", "srgan-vgg22", "srgan-vgg54")
    if all((shipped / f"{v}.safetensors").is_file() for v in needed):
        return shipped, "shipped weights"
    import json

    import torch

    from sr_models.inference import save_generator, sha256_file
    from sr_models.networks import SRResNet

    folder = tmp / "weights"
    folder.mkdir()
    for v in needed:
        torch.manual_seed(0)
        path = save_generator(SRResNet().eval(), folder / f"{v}.safetensors")
        (folder / f"{v}.json").write_text(json.dumps({"sha256": sha256_file(path)}))
    return folder, "randomly initialised weights (same architecture, same cost)"


def fresh_database(admin_url: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {BENCH_DB}")


def run_once(study: Path, workers: int, env: dict, broker: str | None) -> tuple[float, str]:
    env = dict(env)
    procs = []
    if broker:
        import redis

        redis.Redis.from_url(broker).flushdb()
        env["CELERY_BROKER_URL"] = broker
        for k in range(workers):
            log = open(Path(env["MEDIA_ROOT"]).parent / f"worker{k}.log", "w")
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "mos_site", "worker", "-Q", "gpu,cpu", "--concurrency", "1",
                 "--pool", "solo", "-n", f"bench{k}@%h", "--without-gossip", "--without-mingle"],
                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        time.sleep(8)  # workers import torch and connect before the clock starts
    else:
        env["CELERY_BROKER_URL"] = ""
    try:
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "manage.py", "run_study", str(study), "-v", "0"], cwd=REPO, env=env,
                             capture_output=True, text=True, check=True)
        seconds = time.perf_counter() - t0
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(30)
    summary = next((line for line in out.stdout.splitlines() if line.startswith("stimuli:")), "")
    return seconds, summary


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--studies", nargs="+", default=["studies/demo.toml", "studies/srgan_paper.toml"])
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="0 = in-process, no broker")
    p.add_argument("--database-url", default=os.environ.get("TEST_DATABASE_URL"))
    p.add_argument("--redis-url", default=os.environ.get("TEST_REDIS_URL"))
    p.add_argument("--threads", type=int, default=1, help="torch threads per worker process")
    args = p.parse_args()
    if not args.database_url or not args.redis_url:
        sys.exit('start the servers first: eval "$(bin/services)"')
    base = args.database_url.rsplit("/", 1)[0]
    tmp = Path(tempfile.mkdtemp(prefix="sr-mos-gen-"))
    weights, weights_note = weights_folder(tmp)
    env = dict(os.environ, DATABASE_URL=f"{base}/{BENCH_DB}", SECRET_KEY="bench-only", SR_WEIGHTS_DIR=str(weights),
               OMP_NUM_THREADS=str(args.threads), DJANGO_SETTINGS_MODULE="mos_site.settings")
    rows = []
    for study in args.studies:
        for workers in args.workers:
            fresh_database(f"{base}/postgres")
            media = tmp / "media"
            shutil.rmtree(media, ignore_errors=True)
            env["MEDIA_ROOT"] = str(media)
            subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=REPO, env=env, check=True)
            seconds, summary = run_once(Path(study), workers, env, args.redis_url if workers else None)
            rows.append((Path(study).name, "in-process (no broker)" if workers == 0 else f"{workers} worker process(es)",
                         seconds, summary))
            print(rows[-1], flush=True)
    print(f"CPU only; {os.cpu_count()} CPUs ({platform.machine()}); torch threads per process: {args.threads}; "
          f"{weights_note}; PostgreSQL + Redis on the same machine; LPIPS on")
    print("| study | how | wall time (s) | stimuli |")
    print("|---|---|---:|---|")
    for name, how, seconds, summary in rows:
        print(f"| {name} | {how} | {seconds:.1f} | {summary.removeprefix('stimuli: ')} |")


if __name__ == "__main__":
    main()
