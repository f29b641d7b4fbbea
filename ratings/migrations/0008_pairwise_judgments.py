"""Paired judgments (issue 17): a pair item shows ``stimulus`` left and ``right_stimulus`` right,
``Judgment`` stores the side chosen, one per item.

``Judgment.rater`` repeats the item's session rater (the analysis groups by it) and triggers hold it
equal on every write path, as 0006 does for ratings: a judgment whose rater is not its item's
session rater, or whose item is no pair, is refused, and so is changing a judged item's stimuli or
session, or a session's rater, under a judgment. Both raise IntegrityError naming
``judgment_matches_item``.

On SQLite, adding the session item's constraints remakes its table, which a trigger that names the
table forbids and which drops the triggers on it: 0006's triggers are dropped before the schema
operations and created again after them.
"""

import importlib

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

RATING_TRIGGERS = importlib.import_module("ratings.migrations.0006_rating_matches_item")

MESSAGE = "judgment_matches_item: a judgment belongs to a pair item of its own rater, and a judged pair does not change"
_MATCHES = ("SELECT 1 FROM ratings_sessionitem i JOIN ratings_session s ON s.id = i.session_id "
            "WHERE i.id = NEW.item_id AND i.right_stimulus_id IS NOT NULL AND s.rater_id = NEW.rater_id")
_ITEM_JUDGED = "SELECT 1 FROM ratings_judgment j WHERE j.item_id = OLD.id"
_SESSION_BREAKS = ("SELECT 1 FROM ratings_judgment j JOIN ratings_sessionitem i ON i.id = j.item_id "
                   "WHERE i.session_id = OLD.id AND j.rater_id <> NEW.rater_id")
_ITEM_COLUMNS = ("id", "session_id", "stimulus_id", "right_stimulus_id")

_changed = RATING_TRIGGERS._changed  # the same SQL shapes as the rating triggers
_plpgsql = RATING_TRIGGERS._plpgsql


SQLITE = [
    f"""CREATE TRIGGER judgment_matches_item_insert BEFORE INSERT ON ratings_judgment
        WHEN NOT EXISTS ({_MATCHES}) BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END""",
    f"""CREATE TRIGGER judgment_matches_item_update BEFORE UPDATE OF item_id, rater_id ON ratings_judgment
        WHEN NOT EXISTS ({_MATCHES}) BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END""",
    f"""CREATE TRIGGER judgment_matches_item_item BEFORE UPDATE OF {", ".join(_ITEM_COLUMNS)} ON ratings_sessionitem
        WHEN ({_changed("IS NOT", *_ITEM_COLUMNS)}) AND EXISTS ({_ITEM_JUDGED})
        BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END""",
    f"""CREATE TRIGGER judgment_matches_item_session BEFORE UPDATE OF id, rater_id ON ratings_session
        WHEN ({_changed("IS NOT", "id", "rater_id")}) AND EXISTS ({_SESSION_BREAKS})
        BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END""",
]
SQLITE_DROP = [f"DROP TRIGGER IF EXISTS judgment_matches_item_{n}" for n in ("insert", "update", "item", "session")]

_RAISE = f"RAISE EXCEPTION '{MESSAGE}' USING ERRCODE = 'check_violation';"

POSTGRESQL = [
    _plpgsql("judgment_matches_item", f"PERFORM {_MATCHES.removeprefix('SELECT ')} FOR SHARE OF i FOR KEY SHARE OF s; "
                                      f"IF NOT FOUND THEN {_RAISE} END IF;"),
    _plpgsql("judgment_matches_item_item", f"IF EXISTS ({_ITEM_JUDGED}) THEN {_RAISE} END IF;"),
    _plpgsql("judgment_matches_item_session", f"IF EXISTS ({_SESSION_BREAKS}) THEN {_RAISE} END IF;"),
    """CREATE TRIGGER judgment_matches_item BEFORE INSERT OR UPDATE OF item_id, rater_id
       ON ratings_judgment FOR EACH ROW EXECUTE FUNCTION judgment_matches_item()""",
    f"""CREATE TRIGGER judgment_matches_item_item BEFORE UPDATE OF {", ".join(_ITEM_COLUMNS)}
       ON ratings_sessionitem FOR EACH ROW WHEN ({_changed("IS DISTINCT FROM", *_ITEM_COLUMNS)})
       EXECUTE FUNCTION judgment_matches_item_item()""",
    f"""CREATE TRIGGER judgment_matches_item_session BEFORE UPDATE OF id, rater_id
       ON ratings_session FOR EACH ROW WHEN ({_changed("IS DISTINCT FROM", "id", "rater_id")})
       EXECUTE FUNCTION judgment_matches_item_session()""",
]
POSTGRESQL_DROP = [
    "DROP TRIGGER IF EXISTS judgment_matches_item ON ratings_judgment",
    "DROP TRIGGER IF EXISTS judgment_matches_item_item ON ratings_sessionitem",
    "DROP TRIGGER IF EXISTS judgment_matches_item_session ON ratings_session",
    "DROP FUNCTION IF EXISTS judgment_matches_item(), judgment_matches_item_item(), judgment_matches_item_session()",
]
STATEMENTS = {"sqlite": (SQLITE, SQLITE_DROP), "postgresql": (POSTGRESQL, POSTGRESQL_DROP)}


def _execute(schema_editor, statements) -> None:
    for sql in statements:
        schema_editor.execute(sql, params=None)


def lift_rating_triggers(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "sqlite":
        _execute(schema_editor, RATING_TRIGGERS.SQLITE_DROP)


def restore_rating_triggers(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "sqlite":
        _execute(schema_editor, RATING_TRIGGERS.SQLITE_DROP + RATING_TRIGGERS.SQLITE)


def create(apps, schema_editor) -> None:
    vendor = schema_editor.connection.vendor
    if vendor not in STATEMENTS:
        raise NotImplementedError(f"no judgment_matches_item triggers for {vendor}: add them before using it")
    restore_rating_triggers(apps, schema_editor)
    _execute(schema_editor, STATEMENTS[vendor][0])


def drop(apps, schema_editor) -> None:
    _execute(schema_editor, STATEMENTS[schema_editor.connection.vendor][1])
    lift_rating_triggers(apps, schema_editor)


class Migration(migrations.Migration):

    dependencies = [
        ('ratings', '0007_study_design_from_config'),
    ]

    operations = [
        migrations.RunPython(lift_rating_triggers, restore_rating_triggers),
        migrations.CreateModel(
            name='Judgment',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('side', models.CharField(choices=[('left', 'Left'), ('right', 'Right')], max_length=5)),
                ('response_ms', models.PositiveIntegerField(blank=True, help_text='from display to answer', null=True)),
                ('layout', models.CharField(blank=True, help_text='side (both shown) or toggle (one at a time)', max_length=6)),
                ('toggles', models.PositiveIntegerField(default=0, help_text='switches between the versions in the toggle layout')),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
            ],
        ),
        migrations.AddField(
            model_name='sessionitem',
            name='expected_side',
            field=models.CharField(blank=True, choices=[('left', 'Left'), ('right', 'Right')], help_text='practice and gold pairs: the side a careful rater picks', max_length=5),
        ),
        migrations.AddField(
            model_name='sessionitem',
            name='right_stimulus',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='right_items', to='ratings.stimulus'),
        ),
        migrations.AddConstraint(
            model_name='sessionitem',
            constraint=models.CheckConstraint(condition=models.Q(('right_stimulus__isnull', True), models.Q(('right_stimulus', models.F('stimulus')), _negated=True), _connector='OR'), name='pair_of_two_stimuli'),
        ),
        migrations.AddConstraint(
            model_name='sessionitem',
            constraint=models.CheckConstraint(condition=models.Q(('expected_side', ''), ('right_stimulus__isnull', False), _connector='OR'), name='expected_side_of_a_pair'),
        ),
        migrations.AddField(
            model_name='judgment',
            name='item',
            field=models.OneToOneField(on_delete=django.db.models.deletion.PROTECT, related_name='judgment', to='ratings.sessionitem'),
        ),
        migrations.AddField(
            model_name='judgment',
            name='rater',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='judgments', to='ratings.rater'),
        ),
        migrations.AddIndex(
            model_name='judgment',
            index=models.Index(fields=['rater', 'created_at'], name='ratings_jud_rater_i_81ccee_idx'),
        ),
        migrations.AddConstraint(
            model_name='judgment',
            constraint=models.CheckConstraint(condition=models.Q(('side__in', ['left', 'right'])), name='judgment_side_left_or_right'),
        ),
        migrations.AddConstraint(
            model_name='judgment',
            constraint=models.CheckConstraint(condition=models.Q(('layout__in', ['', 'side', 'toggle'])), name='judgment_layout_known'),
        ),
        migrations.RunPython(create, drop),
    ]
