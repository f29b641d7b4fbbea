"""A rating's ``rater`` and ``stimulus`` are its item's session rater and stimulus, held by the database.

``Rating.rater`` / ``Rating.stimulus`` repeat what ``Rating.item`` points to; they stay as columns
because the analysis filters and groups 10^6 ratings by them without two joins. Triggers keep them
equal on every path that writes (``create``, ``bulk_create``, ``update()``, raw SQL): a rating whose
rater or stimulus differs from its item's is refused, and so is changing an item's stimulus or
session, or a session's rater, under a rating that would then differ. Both refusals raise
``IntegrityError`` naming ``rating_matches_item``.

PostgreSQL: the rating's check takes a share lock on the item row (and a key-share lock on the
session row), so an item changed by a concurrent transaction is checked again once it commits.

SQLite drops a table's triggers when Django remakes the table (most ``AlterField`` on SQLite):
a later migration that alters ``Rating``, ``SessionItem`` or ``Session`` must run ``create`` again
(``tests/ratings/test_rating_integrity.py`` fails if the triggers are gone).
"""

from django.db import migrations

# No quote characters: it is written into SQL string literals.
MESSAGE = "rating_matches_item: the rater and stimulus of a rating must be the session rater and the stimulus of its item"

# A rating row that matches its item: the condition every trigger checks, in both dialects.
_MATCHES = ("SELECT 1 FROM ratings_sessionitem i JOIN ratings_session s ON s.id = i.session_id "
            "WHERE i.id = NEW.item_id AND i.stimulus_id = NEW.stimulus_id AND s.rater_id = NEW.rater_id")
_ITEM_BREAKS = ("SELECT 1 FROM ratings_rating g JOIN ratings_session s ON s.id = NEW.session_id "
                "WHERE g.item_id = OLD.id AND (g.stimulus_id <> NEW.stimulus_id OR g.rater_id <> s.rater_id)")
_SESSION_BREAKS = ("SELECT 1 FROM ratings_rating g JOIN ratings_sessionitem i ON i.id = g.item_id "
                   "WHERE i.session_id = OLD.id AND g.rater_id <> NEW.rater_id")


def _changed(operator: str, *columns: str) -> str:
    """SQL true when an UPDATE changes one of the columns: a save() that rewrites every column
    unchanged (Session.save() at consent) skips the look-up through the session's items."""
    return " OR ".join(f"NEW.{c} {operator} OLD.{c}" for c in columns)


SQLITE = [
    f"""CREATE TRIGGER rating_matches_item_insert BEFORE INSERT ON ratings_rating
        WHEN NOT EXISTS ({_MATCHES}) BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END""",
    f"""CREATE TRIGGER rating_matches_item_update BEFORE UPDATE OF item_id, rater_id, stimulus_id ON ratings_rating
        WHEN NOT EXISTS ({_MATCHES}) BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END""",
    f"""CREATE TRIGGER rating_matches_item_item BEFORE UPDATE OF id, session_id, stimulus_id ON ratings_sessionitem
        WHEN ({_changed("IS NOT", "id", "session_id", "stimulus_id")}) AND EXISTS ({_ITEM_BREAKS})
        BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END""",
    f"""CREATE TRIGGER rating_matches_item_session BEFORE UPDATE OF id, rater_id ON ratings_session
        WHEN ({_changed("IS NOT", "id", "rater_id")}) AND EXISTS ({_SESSION_BREAKS})
        BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END""",
]
SQLITE_DROP = [f"DROP TRIGGER IF EXISTS rating_matches_item_{name}" for name in ("insert", "update", "item", "session")]


def _plpgsql(function: str, body: str) -> str:
    return f"""CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            {body}
            RETURN NEW;
        END $$"""


_RAISE = f"RAISE EXCEPTION '{MESSAGE}' USING ERRCODE = 'check_violation';"
POSTGRESQL = [
    _plpgsql("rating_matches_item", f"PERFORM {_MATCHES.removeprefix('SELECT ')} FOR SHARE OF i FOR KEY SHARE OF s; "
                                    f"IF NOT FOUND THEN {_RAISE} END IF;"),
    _plpgsql("rating_matches_item_item", f"IF EXISTS ({_ITEM_BREAKS}) THEN {_RAISE} END IF;"),
    _plpgsql("rating_matches_item_session", f"IF EXISTS ({_SESSION_BREAKS}) THEN {_RAISE} END IF;"),
    """CREATE TRIGGER rating_matches_item BEFORE INSERT OR UPDATE OF item_id, rater_id, stimulus_id
       ON ratings_rating FOR EACH ROW EXECUTE FUNCTION rating_matches_item()""",
    f"""CREATE TRIGGER rating_matches_item_item BEFORE UPDATE OF id, session_id, stimulus_id
       ON ratings_sessionitem FOR EACH ROW WHEN ({_changed("IS DISTINCT FROM", "id", "session_id", "stimulus_id")})
       EXECUTE FUNCTION rating_matches_item_item()""",
    f"""CREATE TRIGGER rating_matches_item_session BEFORE UPDATE OF id, rater_id
       ON ratings_session FOR EACH ROW WHEN ({_changed("IS DISTINCT FROM", "id", "rater_id")})
       EXECUTE FUNCTION rating_matches_item_session()""",
]
POSTGRESQL_DROP = [
    "DROP TRIGGER IF EXISTS rating_matches_item ON ratings_rating",
    "DROP TRIGGER IF EXISTS rating_matches_item_item ON ratings_sessionitem",
    "DROP TRIGGER IF EXISTS rating_matches_item_session ON ratings_session",
    "DROP FUNCTION IF EXISTS rating_matches_item(), rating_matches_item_item(), rating_matches_item_session()",
]
STATEMENTS = {"sqlite": (SQLITE, SQLITE_DROP), "postgresql": (POSTGRESQL, POSTGRESQL_DROP)}


def _run(schema_editor, create: bool) -> None:
    vendor = schema_editor.connection.vendor
    if vendor not in STATEMENTS:
        raise NotImplementedError(f"no rating_matches_item triggers for {vendor}: add them before using it")
    for sql in STATEMENTS[vendor][0 if create else 1]:
        schema_editor.execute(sql, params=None)


def create(apps, schema_editor) -> None:
    _run(schema_editor, create=True)


def drop(apps, schema_editor) -> None:
    _run(schema_editor, create=False)


class Migration(migrations.Migration):
    dependencies = [
        ("ratings", "0005_rename_session_planned_scored_items"),
    ]

    operations = [migrations.RunPython(create, drop)]
