"""Rating throughput and latency under load: gunicorn + PostgreSQL (or SQLite), N simulated raters.

Each simulated rater is an HTTP client with its own cookies that speaks the protocol of rater.js:
it loads its rating page once, then, for a bounded number of items, waits a think time, posts a
score (JSON answer with the next item) and fetches the image to preload. A share of submissions is sent twice (a double click or a
replay). At the end the stored ratings are compared with the ratings sent: every rating sent must
be stored exactly once, replays none.

    eval "$(bin/services)"
    python benchmarks/rating_load.py --raters 50 200 --items 20 --think 1.0
    python benchmarks/rating_load.py --raters 60 --database-url sqlite:////tmp/sr-mos-bench.sqlite3
    python benchmarks/rating_load.py --protocol pairwise --raters 200 --items 20 --think 1.0

``--protocol pairwise`` runs the same load on a paired study (balanced design, no practice pairs):
each simulated rater speaks pair.js's protocol instead (a side posted to ``/pair/``, both images
of the next pair fetched), and the stored judgments are compared with the sides sent.

Prints one table row per rater count: throughput, p50/p95/p99 latency of the rating POST, and the
check of stored against sent ratings.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

BENCH_DB = "sr_mos_bench"


def _env(database_url: str, media_root: Path) -> dict:
    return dict(os.environ, DATABASE_URL=database_url, SECRET_KEY="bench-only", MEDIA_ROOT=str(media_root),
                SR_COMPUTE_LPIPS="0", CELERY_BROKER_URL="", ALLOWED_HOSTS="127.0.0.1,localhost",
                DJANGO_SETTINGS_MODULE="mos_site.settings")


def _sqlite_path(database_url: str) -> Path | None:
    return Path(database_url[len("sqlite:///"):]) if database_url.startswith("sqlite:///") else None


def _connect(database_url: str):
    """A DB-API connection to the benchmark database (sqlite3 or psycopg)."""
    path = _sqlite_path(database_url)
    if path is not None:
        import sqlite3

        return sqlite3.connect(path)
    import psycopg

    return psycopg.connect(database_url)


def _study_text(protocol: str, n_raters: int, items: int) -> str:
    if protocol == "pairwise":  # Set14 x 3 conditions (the original among them): 42 cells
        return f"""name = "load"
seed = 1
datasets = ["Set14"]
methods = ["nearest", "bicubic", "hr"]
protocol = "pairwise"
[pairwise]
design = "balanced"
judgments_per_rater = {items}
judgments_per_pair = {max(1, n_raters * items // 42 + 1)}
practice_pairs = 0
"""
    return f"""name = "load"
seed = 1
datasets = ["Set14"]
methods = ["nearest", "bicubic", "hr"]
[rating]
calibration_images = 0
assignment = "balanced"
ratings_per_stimulus = {max(1, n_raters * items // 42 + 1)}
items_per_rater = {items}
"""


# What differs between the protocols for a simulated rater: the page, the answer field and its
# values, and how the stored answers are read back (in each rater's order).
PROTOCOLS = {
    "acr": {"page": "rate", "field": "score", "values": ["1", "2", "3", "4", "5"],
            "stored": "SELECT r.token, i.position, g.score FROM ratings_rating g JOIN ratings_sessionitem i ON "
                      "g.item_id = i.id JOIN ratings_session s ON i.session_id = s.id JOIN ratings_rater r ON "
                      "s.rater_id = r.id ORDER BY r.token, i.position"},
    "pairwise": {"page": "pair", "field": "choice", "values": ["left", "right"],
                 "stored": "SELECT r.token, i.position, g.side FROM ratings_judgment g JOIN ratings_sessionitem i ON "
                           "g.item_id = i.id JOIN ratings_session s ON i.session_id = s.id JOIN ratings_rater r ON "
                           "s.rater_id = r.id ORDER BY r.token, i.position"},
}
PROTOCOL = "acr"


def setup_database(database_url: str, media_root: Path, n_raters: int, items: int) -> list[str]:
    """A fresh database with a ready study and ``n_raters`` started sessions; returns their tokens."""
    path = _sqlite_path(database_url)
    if path is not None:
        for stale in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            stale.unlink(missing_ok=True)
    else:
        import psycopg

        admin_url = database_url.rsplit("/", 1)[0] + "/postgres"
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB}")
            conn.execute(f"CREATE DATABASE {BENCH_DB}")
    env = _env(database_url, media_root)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=REPO, env=env, check=True)
    script = f"""
import django; django.setup()
from ratings import dispatch, sessions, studies
from ratings.study_file import parse_study_file
from django.conf import settings
text = {_study_text(PROTOCOL, n_raters, items)!r}
study = studies.create_or_resume_study(parse_study_file(text, "load.toml", datasets_root=settings.SR_DATASETS_ROOT)).study
dispatch.enqueue_pending(study)
for rater in studies.create_invitations(study, {n_raters}):
    sessions.start_session(rater)
    print(rater.token)
"""
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, check=True, capture_output=True, text=True)
    return out.stdout.split()


def stored_ratings(database_url: str) -> dict[str, list[str]]:
    rows = _connect(database_url).execute(PROTOCOLS[PROTOCOL]["stored"]).fetchall()
    out: dict[str, list[str]] = {}
    for token, _, answer in rows:
        out.setdefault(token, []).append(str(answer))
    return out


async def rater(session, base: str, token: str, items: int, think: float, replay_share: float, rng: random.Random,
                latencies: list[float], sent: dict[str, list[int]], errors: list[str], fetch_images: bool) -> None:
    """One rater, speaking the protocol rater.js (pair.js) speaks: a page once, then a JSON POST per answer."""
    import aiohttp

    spec = PROTOCOLS[PROTOCOL]
    url = f"{base}/r/{token}/{spec['page']}/"
    sent[token] = []
    async with session.get(url) as response:
        page = await response.text()
    item = re.search(r'name="item" value="([^"]+)"', page)
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    if not item or not csrf:
        errors.append(f"{token}: no rating form")
        return
    item, csrf = item.group(1), csrf.group(1)
    headers = {"Referer": url, "X-Rating-Client": "fetch", "Accept": "application/json"}
    for _ in range(items):
        if think:
            await asyncio.sleep(rng.expovariate(1.0 / think))
        score = rng.choice(spec["values"])
        form = {"csrfmiddlewaretoken": csrf, "item": item, spec["field"]: score, "response_ms": "900"}
        attempts, data = (2 if rng.random() < replay_share else 1), None
        while attempts:
            t0 = time.perf_counter()
            try:
                async with session.post(url, data=form, headers=headers) as response:
                    data = await response.json()
                    status = response.status
            except aiohttp.ClientOSError:
                # A kept-alive connection the server had just closed: send again, as a browser
                # would (the server stores a repeated submission once).
                continue
            latencies.append(time.perf_counter() - t0)
            attempts -= 1
            if status != 200 or not data.get("ok"):
                errors.append(f"{token}: POST answered {status} {data}")
                return
        sent[token].append(score)
        if "redirect" in data:
            return  # break or done: this bounded loop ends here
        item = data["item"]
        # rater.js preloads the image after the next one; pair.js both images of the next pair
        for image in data.get("next_images") or [data.get("next_url")] if fetch_images else []:
            if not image:
                continue
            async with session.get(base + image) as response:
                await response.read()
                if response.status != 200:
                    errors.append(f"{token}: image answered {response.status}")


async def run_load(base: str, tokens: list[str], items: int, think: float, replay_share: float, seed: int,
                   fetch_images: bool):
    import aiohttp

    latencies: list[float] = []
    sent: dict[str, list[int]] = {}
    errors: list[str] = []
    connector = aiohttp.TCPConnector(limit=0)
    t0 = time.perf_counter()
    sessions = [aiohttp.ClientSession(connector=connector, connector_owner=False,
                                      cookie_jar=aiohttp.CookieJar(unsafe=True)) for _ in tokens]
    try:
        await asyncio.gather(*[
            rater(s, base, token, items, think, replay_share, random.Random(f"{seed}:{k}"), latencies, sent, errors,
                  fetch_images)
            for k, (s, token) in enumerate(zip(sessions, tokens))
        ])
    finally:
        for s in sessions:
            await s.close()
        await connector.close()
    return latencies, sent, errors, time.perf_counter() - t0


WORKER_CLASS = "sync"
WORKER_ARGS = {
    "gthread": ["--worker-class", "gthread", "--threads", "4", "--keep-alive", "30"],
    "sync": ["--worker-class", "sync"],
}


def start_gunicorn(env: dict, port: int, workers: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "mos_site.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
         *WORKER_ARGS[WORKER_CLASS], "--log-level", "warning"],
        cwd=REPO, env=env, start_new_session=True,
    )
    import urllib.request

    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/join/x/", timeout=1)
        except urllib.error.HTTPError:
            return proc  # 404: up
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("gunicorn did not start")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--raters", type=int, nargs="+", default=[50, 200])
    p.add_argument("--items", type=int, default=20, help="ratings per rater")
    p.add_argument("--think", type=float, default=2.0, help="mean seconds between ratings (exponential); 0: none")
    p.add_argument("--replays", type=float, default=0.05, help="share of submissions sent twice")
    p.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    p.add_argument("--no-images", action="store_true", help="do not fetch the stimulus images")
    p.add_argument("--worker-class", choices=sorted(WORKER_ARGS), default="sync")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--protocol", choices=sorted(PROTOCOLS), default="acr", help="1-5 ratings or paired judgments")
    p.add_argument("--database-url", default=os.environ.get("TEST_DATABASE_URL"),
                   help="a PostgreSQL server (its database sr_mos_bench is made afresh) or sqlite:///FILE")
    args = p.parse_args()
    global WORKER_CLASS, PROTOCOL
    WORKER_CLASS = args.worker_class
    PROTOCOL = args.protocol
    if not args.database_url:
        sys.exit("set TEST_DATABASE_URL (eval \"$(bin/services)\") or pass --database-url")
    sqlite = _sqlite_path(args.database_url) is not None
    database_url = args.database_url if sqlite else args.database_url.rsplit("/", 1)[0] + f"/{BENCH_DB}"
    media_root = Path("/tmp/sr-mos-bench-media")

    rows, server_errors = [], 0
    for n in args.raters:
        tokens = setup_database(database_url, media_root, n, args.items)
        server = start_gunicorn(_env(database_url, media_root), args.port, args.workers)
        try:
            latencies, sent, errors, wall = asyncio.run(
                run_load(f"http://127.0.0.1:{args.port}", tokens, args.items, args.think, args.replays, seed=n,
                         fetch_images=not args.no_images))
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(20)
        stored = stored_ratings(database_url)
        n_sent = sum(len(v) for v in sent.values())
        exact = all(stored.get(t, []) == scores for t, scores in sent.items())
        rows.append((n, len(latencies), n_sent / wall, percentile(latencies, .5) * 1e3, percentile(latencies, .95) * 1e3,
                     percentile(latencies, .99) * 1e3, n_sent, sum(len(v) for v in stored.values()), exact, len(errors)))
        server_errors += sum(re.search(r" answered 5\d\d", e) is not None for e in errors)
        if errors:
            print("errors:", errors[:5])
    print(f"{args.protocol}: gunicorn {args.worker_class}, {args.workers} workers; {'SQLite' if sqlite else 'PostgreSQL'}; think time {args.think} s; "
          f"{'POST + image' if not args.no_images else 'POST'} per rating; "
          f"{args.replays:.0%} of submissions replayed; {platform.machine()}, {os.cpu_count()} CPUs "
          f"(server and load generator on the same machine)")
    print("| raters | POSTs | ratings/s | p50 ms | p95 ms | p99 ms | ratings sent | stored | stored == sent | errors |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]:.1f} | {r[3]:.1f} | {r[4]:.1f} | {r[5]:.1f} | {r[6]} | {r[7]} | {'yes' if r[8] else 'NO'} | {r[9]} |")
    print(f"5xx answers: {server_errors}")


if __name__ == "__main__":
    main()
