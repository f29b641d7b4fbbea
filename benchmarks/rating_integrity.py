"""What the rating_matches_item triggers (migration 0006) cost when ratings are inserted.

    python benchmarks/rating_integrity.py --ratings 100000
    python benchmarks/rating_integrity.py --ratings 100000 --database-url postgres://USER@HOST:PORT/SCRATCH_DB

Migrates a scratch database (a fresh SQLite file by default; the PostgreSQL database given is
emptied of its tables first by ``flush``), makes ``--ratings`` session items over ``--raters``
raters, then times ``Rating.objects.bulk_create`` of one rating per item in batches of 5000 (the
import's path) and ``--singles`` one-row ``Rating.objects.create`` calls, each in one transaction
(the rater flow's path, less its other queries), with the triggers dropped ("before") and created
("after"), alternating, ``--repeats`` times. Prints the fastest and the median seconds of each: on a
shared machine the fastest is the least disturbed by other work.
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def setup(database_url: str) -> None:
    os.environ.update(DATABASE_URL=database_url, SECRET_KEY="bench-only", CELERY_BROKER_URL="",
                      DJANGO_SETTINGS_MODULE="mos_site.settings")
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("flush", interactive=False, verbosity=0)


def make_items(n_items: int, n_raters: int) -> list:
    from ratings.models import Condition, Rater, Session, SessionItem, SourceImage, Stimulus, Study, StudyDataset

    study = Study.objects.create(name="bench", seed=1, config_text="", config={})
    condition = Condition.objects.create(study=study, name="bicubic", kind=Condition.Kind.INTERPOLATION)
    dataset = StudyDataset.objects.create(study=study, name="lab", folder="-")
    per_rater = n_items // n_raters
    images = SourceImage.objects.bulk_create([SourceImage(dataset=dataset, name=f"img_{k:06d}", hr_path="-", hr_sha256="0",
                                                          width=8, height=8) for k in range(per_rater)], batch_size=5000)
    stimuli = Stimulus.objects.bulk_create([Stimulus(study=study, image=image, condition=condition, public_id=f"s{k}")
                                            for k, image in enumerate(images)], batch_size=5000)
    raters = Rater.objects.bulk_create([Rater(study=study, label=f"r{r:05d}", token=f"t{r}") for r in range(n_raters)])
    sessions = Session.objects.bulk_create([Session(rater=rater) for rater in raters])
    items = [SessionItem(session=session, position=k, stimulus=stimulus, kind="test")
             for session in sessions for k, stimulus in enumerate(stimuli)]
    return SessionItem.objects.bulk_create(items, batch_size=5000)


def timed(function) -> float:
    from django.db import transaction

    from ratings.models import Rating

    start = time.perf_counter()
    function()
    seconds = time.perf_counter() - start
    with transaction.atomic():
        Rating.objects.all().delete()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ratings", type=int, default=100_000)
    parser.add_argument("--raters", type=int, default=100)
    parser.add_argument("--singles", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file in a temporary folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        setup(args.database_url or f"sqlite:///{Path(scratch) / 'bench.sqlite3'}")
        from django.db import connection, transaction

        from ratings.models import Rating

        triggers = importlib.import_module("ratings.migrations.0006_rating_matches_item")
        items = make_items(args.ratings, args.raters)

        def bulk():
            with transaction.atomic():
                Rating.objects.bulk_create([Rating(item=i, rater_id=i.session.rater_id, stimulus_id=i.stimulus_id, score=3)
                                            for i in items], batch_size=5000)

        def singles():
            for i in items[: args.singles]:
                with transaction.atomic():
                    Rating.objects.create(item=i, rater_id=i.session.rater_id, stimulus_id=i.stimulus_id, score=3)

        results: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.repeats):
            for mode in ("before", "after"):
                with connection.schema_editor() as editor:
                    (triggers.create if mode == "after" else triggers.drop)(None, editor)
                results.setdefault(("bulk", mode), []).append(timed(bulk))
                results.setdefault(("singles", mode), []).append(timed(singles))
        print(f"{connection.vendor}, {len(items):,} items, {args.repeats} repeats (fastest / median seconds)")
        for path, n in (("bulk", len(items)), ("singles", args.singles)):
            row = []
            for summary in (min, statistics.median):
                before, after = (summary(results[(path, m)]) for m in ("before", "after"))
                row.append(f"before {before:6.2f} s, after {after:6.2f} s ({after / before - 1:+.0%})")
            print(f"{path:8s} {n:>8,} ratings: fastest {row[0]}; median {row[1]}")


if __name__ == "__main__":
    main()
