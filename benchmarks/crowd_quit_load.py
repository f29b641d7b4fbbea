"""A balanced crowd study whose workers quit at random, on a live server: does top-up fill it?

A fresh database holds a balanced study (Set14 x nearest/bicubic/hr: 42 stimuli) run on a generic
crowd platform (``[crowd] platform = "generic"``, ``worker_param = "worker_id"``, no calibration, no
gold). Simulated workers come through the real HTTP endpoints, many at once, each an HTTP client
with its own cookies: the study link (GET shows the start page, POST enrols), consent, then the
rating page and rater.js's JSON posts. Before each answer a worker quits with probability
``--quit`` and never comes back (its session stalls); the others finish. Arrivals continue until
every stimulus has ``ratings_per_stimulus`` stored ratings, then the workers in flight finish.

Time is advanced in one controlled way: ``stall_minutes`` is 1 (its minimum), and an *expiry clock*
process calls ``ratings.expiry.expire_stalled(study, now=real now + (60 - STALL) s)`` every second,
so a session idle for more than ``--stall-seconds`` (STALL) expires, as a deployment's scheduled
``expire_sessions`` would after ``stall_minutes``; enrolment's own lazy expiry (real time) runs too.
An active worker's pauses (``--think``, exponential) are far below STALL; one whose session expired
anyway is refused (410) and counted as "expired while active".

At the end, from the database: every test stimulus has at least its target of ratings counted by
the balance rule (stored, not in a screened-out session), none lost (every answer the server
answered 200 has its row, in the order sent), and the over-collection per stimulus is at most the
number of sessions in flight when the target was reached. Writes a Markdown section (the command,
the machine, the numbers) to ``--out``.

    python benchmarks/crowd_quit_load.py                         # SQLite
    eval "$(bin/services)"; python benchmarks/crowd_quit_load.py --database-url "$TEST_DATABASE_URL"
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.rating_load import _connect, _env, _sqlite_path, percentile, start_gunicorn  # noqa: E402

BENCH_DB = "sr_mos_crowd_bench"

STUDY = """name = "crowdload"
seed = 3
datasets = ["Set14"]
methods = ["nearest", "bicubic", "hr"]
[rating]
calibration_images = 0
assignment = "balanced"
ratings_per_stimulus = {rps}
items_per_rater = {items}
[crowd]
platform = "generic"
worker_param = "worker_id"
completion_url = "https://example.org/done?cc={{code}}"
stall_minutes = 1
"""

KEPT = """SELECT s.id, COUNT(g.id) FROM ratings_stimulus s
JOIN ratings_sourceimage i ON s.image_id = i.id JOIN ratings_studydataset d ON i.dataset_id = d.id
LEFT JOIN ratings_sessionitem it ON it.stimulus_id = s.id AND it.kind = 'test'
LEFT JOIN ratings_rating g ON g.item_id = it.id
LEFT JOIN ratings_session se ON it.session_id = se.id
WHERE d.role = 'test' AND s.state = 'done' AND (g.id IS NULL OR se.state <> 'screened_out')
GROUP BY s.id"""
LIVE = "SELECT COUNT(*) FROM ratings_session WHERE state IN ('calibration', 'rating')"
STATES = "SELECT state, COUNT(*) FROM ratings_session GROUP BY state"
STORED = ("SELECT r.external_id, g.score FROM ratings_rating g JOIN ratings_sessionitem i ON g.item_id = i.id "
          "JOIN ratings_session s ON i.session_id = s.id JOIN ratings_rater r ON s.rater_id = r.id "
          "ORDER BY r.external_id, i.position")


def setup_database(database_url: str, media_root: Path, rps: int, items: int) -> str:
    """A fresh database with the ready study; returns its open-enrolment token."""
    path = _sqlite_path(database_url)
    if path is not None:
        for stale in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            stale.unlink(missing_ok=True)
    else:
        import psycopg

        with psycopg.connect(database_url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB}")
            conn.execute(f"CREATE DATABASE {BENCH_DB}")
    env = _env(database_url, media_root)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=REPO, env=env, check=True)
    script = f"""
import django; django.setup()
from django.conf import settings
from ratings import dispatch, studies
from ratings.study_file import parse_study_file
text = {STUDY.format(rps=rps, items=items)!r}
study = studies.create_or_resume_study(parse_study_file(text, "crowdload.toml", datasets_root=settings.SR_DATASETS_ROOT)).study
dispatch.enqueue_pending(study)
study.refresh_from_db()
assert study.state == "ready", study.state
print(study.open_enrolment_token)
"""
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, check=True, capture_output=True, text=True)
    return out.stdout.split()[-1]


def start_expiry_clock(env: dict, stall_seconds: float) -> subprocess.Popen:
    """The controlled clock: every second, expire what has been idle for more than ``stall_seconds``."""
    script = f"""
import datetime as dt, time
import django; django.setup()
from django.utils import timezone
from ratings.expiry import expire_stalled
from ratings.models import Study
study = Study.objects.get(name="crowdload")
ahead = dt.timedelta(seconds=60 - {stall_seconds})  # stall_minutes = 1
while True:
    expire_stalled(study, now=timezone.now() + ahead)
    time.sleep(1)
"""
    return subprocess.Popen([sys.executable, "-c", script], cwd=REPO, env=env, start_new_session=True)


class Tally:
    def __init__(self):
        self.latencies: list[float] = []
        self.sent: dict[str, list[str]] = {}  # worker id -> scores answered 200 and stored
        self.outcomes: dict[str, int] = {}
        self.errors: list[str] = []
        self.active = 0  # workers between consent and their end
        self.target_reached = False
        self.in_flight_at_target: tuple[int, int] | None = None  # (live sessions in the database, active workers)

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1


def _field(page: str, name: str) -> str | None:
    found = re.search(rf'name="{name}" value="([^"]+)"', page)
    return found.group(1) if found else None


async def worker(http, base: str, join_url: str, worker_id: str, args, rng: random.Random, tally: Tally) -> str:
    """One worker from arrival to the end: 'complete', 'quit', 'expired while active', 'nothing left'
    (refused at the door or at consent: every short stimulus waits in a live session), 'closed'
    (enrolment refused otherwise: the target reached, the cap)."""
    async with http.get(f"{base}{join_url}?worker_id={worker_id}") as response:
        page = await response.text()
    csrf = _field(page, "csrfmiddlewaretoken")
    if response.status != 200 or csrf is None:
        return "closed"
    form = {"csrfmiddlewaretoken": csrf, "worker_id": worker_id}
    async with http.post(f"{base}{join_url}", data=form, headers={"Referer": f"{base}{join_url}"},
                         allow_redirects=False) as response:
        if response.status == 410 and "with a worker right now" in await response.text():
            return "nothing left"
        if response.status != 302:
            return "closed"
        home = response.headers["Location"]
    token = home.strip("/").split("/")[-1]
    consent_url = f"{base}/r/{token}/start/"
    async with http.get(consent_url) as response:
        csrf = _field(await response.text(), "csrfmiddlewaretoken")
    form = {"csrfmiddlewaretoken": csrf, "consent": "on", "device_pixel_ratio": "1", "viewport": "1366x768"}
    async with http.post(consent_url, data=form, headers={"Referer": consent_url}) as response:
        await response.read()
        if response.status == 410:
            return "nothing left"
        if response.status >= 500:
            tally.errors.append(f"{worker_id}: consent answered {response.status}")
            return "error"
    rate_url = f"{base}/r/{token}/rate/"
    async with http.get(rate_url) as response:
        page = await response.text()
    item, csrf = _field(page, "item"), _field(page, "csrfmiddlewaretoken")
    if item is None:
        tally.errors.append(f"{worker_id}: no rating form ({response.status})")
        return "error"
    tally.sent[worker_id] = []
    tally.active += 1
    try:
        headers = {"Referer": rate_url, "X-Rating-Client": "fetch", "Accept": "application/json"}
        while True:
            if rng.random() < args.quit:
                return "quit"  # closes the tab: never comes back
            await asyncio.sleep(rng.expovariate(1.0 / args.think))
            score = rng.choice("12345")
            t0 = time.perf_counter()
            async with http.post(rate_url, data={"csrfmiddlewaretoken": csrf, "item": item, "score": score,
                                                 "response_ms": "900"}, headers=headers) as response:
                data = await response.json(content_type=None)
            tally.latencies.append(time.perf_counter() - t0)
            if response.status == 410:
                return "expired while active"
            if response.status != 200 or not data.get("ok"):
                tally.errors.append(f"{worker_id}: rating answered {response.status} {data}")
                return "error"
            tally.sent[worker_id].append(score)
            if "redirect" in data:
                return "complete"
            item = data["item"]
    finally:
        tally.active -= 1


async def slot(k: int, base: str, join_url: str, args, tally: Tally, counter: list[int]) -> None:
    """One place of concurrency: workers one after another until the target is reached."""
    import aiohttp

    while not tally.target_reached:
        counter[0] += 1
        worker_id = f"load-{counter[0]:05d}"
        rng = random.Random(f"{args.seed}:{worker_id}")
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            outcome = await worker(http, base, join_url, worker_id, args, rng, tally)
        tally.count(outcome)
        if outcome == "closed":
            return
        if outcome == "nothing left":
            await asyncio.sleep(1.0)  # the next arrival comes a little later


async def watch(database_url: str, rps: int, tally: Tally, started: float, deadline: float) -> None:
    """Poll the database; at the first moment every stimulus has its target, note what is in flight."""
    conn = _connect(database_url)
    try:
        while time.perf_counter() - started < deadline:
            rows = conn.execute(KEPT).fetchall()
            if rows and min(n for _, n in rows) >= rps:
                live = conn.execute(LIVE).fetchone()[0]
                tally.in_flight_at_target = (live, tally.active)
                tally.target_reached = True
                return
            if hasattr(conn, "commit"):
                conn.commit()  # a fresh snapshot next time
            await asyncio.sleep(0.5)
        tally.target_reached = True  # give up: the report says the target was not reached
    finally:
        conn.close()


async def run(base: str, join_url: str, database_url: str, args) -> tuple[Tally, float]:
    tally, counter = Tally(), [0]
    t0 = time.perf_counter()
    watcher = asyncio.create_task(watch(database_url, args.rps, tally, t0, args.deadline))
    await asyncio.gather(*[slot(k, base, join_url, args, tally, counter) for k in range(args.workers)])
    if not watcher.done():  # every slot closed (enrolment refused) before the target: the report says so
        watcher.cancel()
    return tally, time.perf_counter() - t0


def lscpu() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "lscpu not available"
    keep = ("Architecture", "CPU(s)", "Model name", "Thread(s) per core", "Core(s) per socket")
    return "; ".join(" ".join(line.split()) for line in out.splitlines() if line.split(":")[0].strip() in keep)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", type=int, default=30, help="workers in flight at once")
    p.add_argument("--rps", type=int, default=6, help="ratings_per_stimulus (42 stimuli)")
    p.add_argument("--items", type=int, default=10, help="items_per_rater")
    p.add_argument("--quit", type=float, default=0.05, help="chance, before each answer, that the worker quits")
    p.add_argument("--think", type=float, default=0.3, help="mean seconds between answers (exponential)")
    p.add_argument("--stall-seconds", type=float, default=6.0, help="idle time after which a session expires")
    p.add_argument("--deadline", type=float, default=300.0, help="seconds after which the run gives up")
    p.add_argument("--gunicorn-workers", type=int, default=3)
    p.add_argument("--seed", type=int, default=18)
    p.add_argument("--port", type=int, default=8766)
    p.add_argument("--database-url", default=os.environ.get("DATABASE_URL") or "sqlite:////tmp/sr-mos-crowd-bench.sqlite3",
                   help="sqlite:///FILE (default) or a PostgreSQL server (its database sr_mos_crowd_bench is made afresh)")
    p.add_argument("--out", default=None, help="also write the Markdown section to this file (it is always printed)")
    args = p.parse_args()
    sqlite = _sqlite_path(args.database_url) is not None
    database_url = args.database_url if sqlite else args.database_url.rsplit("/", 1)[0] + f"/{BENCH_DB}"
    media_root = Path("/tmp/sr-mos-crowd-bench-media")

    token = setup_database(database_url, media_root, args.rps, args.items)
    env = dict(_env(database_url, media_root), SR_ENROLMENT_RATE="1000000/600", SR_ENROLMENT_CAP_FACTOR="50")
    server = start_gunicorn(env, args.port, args.gunicorn_workers)
    clock = start_expiry_clock(env, args.stall_seconds)
    try:
        tally, wall = asyncio.run(run(f"http://127.0.0.1:{args.port}", f"/join/{token}/", database_url, args))
    finally:
        for proc in (clock, server):
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(20)

    conn = _connect(database_url)
    kept = dict(conn.execute(KEPT).fetchall())
    states = dict(conn.execute(STATES).fetchall())
    stored: dict[str, list[str]] = {}
    for external_id, score in conn.execute(STORED).fetchall():
        stored.setdefault(external_id.split(":", 1)[-1], []).append(str(score))
    conn.close()
    lost = [w for w, scores in tally.sent.items() if stored.get(w, []) != scores]
    short = sum(n < args.rps for n in kept.values())
    over = max(n - args.rps for n in kept.values())
    live_at_target, active_at_target = tally.in_flight_at_target or (None, None)
    bound_ok = live_at_target is not None and over <= live_at_target
    n_answers = sum(len(v) for v in tally.sent.values())
    verdict = "yes" if (short == 0 and not lost and bound_ok and not tally.errors) else "NO"

    command = "python benchmarks/crowd_quit_load.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    outcomes = ", ".join(f"{n} {k}" for k, n in sorted(tally.outcomes.items()))
    lines = [
        "## Topping up a crowd study whose workers quit at random (issue 18)",
        "",
        f"`{command}` ({'SQLite' if sqlite else 'PostgreSQL'}, gunicorn sync x {args.gunicorn_workers}, server, "
        f"expiry clock and load generator on the same machine: {lscpu()}).",
        "",
        f"A balanced study of 42 stimuli x {args.rps} ratings, {args.items} per worker (a generic crowd platform, "
        f"no calibration, no gold); {args.workers} workers in flight at once through the real pages (study link, "
        f"consent, rater.js's JSON answers, {args.think} s mean think time); before each answer a worker quits "
        f"for good with probability {args.quit}; a session idle for more than {args.stall_seconds} s expires "
        f"(stall_minutes = 1 with the expiry clock {60 - args.stall_seconds:.0f} s ahead); arrivals continue "
        f"until every stimulus has its {args.rps} ratings.",
        "",
        "| workers arrived | outcomes | sessions by state at the end | answers stored | wall s | answer p50 ms | p95 ms |",
        "|---:|---|---|---:|---:|---:|---:|",
        f"| {sum(tally.outcomes.values())} | {outcomes} | {', '.join(f'{n} {s}' for s, n in sorted(states.items()))} "
        f"| {n_answers} | {wall:.1f} | {percentile(tally.latencies, .5) * 1e3:.0f} | "
        f"{percentile(tally.latencies, .95) * 1e3:.0f} |",
        "",
        "| check | result |",
        "|---|---|",
        f"| stimuli below {args.rps} ratings (balance rule) | {short} of {len(kept)} |",
        f"| ratings per stimulus, min / max | {min(kept.values())} / {max(kept.values())} |",
        f"| answers answered 200 without their row, or out of order | {len(lost)} workers |",
        f"| sessions in flight when the target was reached (database live / workers active) | "
        f"{live_at_target} / {active_at_target} |",
        f"| largest over-collection of a stimulus | {over} (bound: {live_at_target}) |",
        f"| errors (5xx, unexpected answers) | {len(tally.errors)} |",
        f"| all checks hold | {verdict} |",
        "",
    ]
    if args.out:
        Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))
    if tally.errors:
        print("errors:", tally.errors[:5])
    sys.exit(0 if verdict == "yes" else 1)


if __name__ == "__main__":
    main()
