"""The rating design is stored once, in ``Study.config["rating"]``; its ten columns and ``config_sha256`` go.

``create_or_resume_study`` copied ``config["rating"]`` into ten columns by hand, and the columns were
what the platform read; ``config_sha256`` repeated ``config_text``. ``Study.design`` now parses
``config["rating"]`` and the old names are properties over it, so nothing can differ.

Data: each study's ``config["rating"]`` is rewritten from its columns (what sessions, enrolment and
the export read until now, so every study keeps the design it ran with, even where a column had been
changed by hand); keys that are not part of the design (``imported_from`` of an imported study)
move to the top of ``config``. Backwards, the columns are filled from ``config["rating"]`` again.
"""

import hashlib

from django.db import migrations, models

import ratings.study_file

# column -> design key (RatingDesign's fields), frozen here as migrations must be.
DESIGN_COLUMNS = {
    "raters_target": "raters", "calibration_images": "calibration_images", "gold_items": "gold_items",
    "break_every": "break_every", "assignment": "assignment", "ratings_per_stimulus": "ratings_per_stimulus",
    "items_per_rater": "items_per_rater", "repeat_dataset": "repeat_dataset", "repeat_method": "repeat_method",
    "repeat_images": "repeat_images",
}


def design_into_config(apps, schema_editor) -> None:
    Study = apps.get_model("ratings", "Study")
    for study in Study.objects.all():
        config = dict(study.config or {})
        old = dict(config.get("rating") or {})
        for key in set(old) - set(DESIGN_COLUMNS.values()):
            config.setdefault(key, old[key])
        config["rating"] = {key: getattr(study, column) for column, key in DESIGN_COLUMNS.items()}
        study.config = config
        study.save(update_fields=["config"])


def design_into_columns(apps, schema_editor) -> None:
    Study = apps.get_model("ratings", "Study")
    for study in Study.objects.all():
        rating = (study.config or {}).get("rating") or {}
        for column, key in DESIGN_COLUMNS.items():
            if key in rating:
                setattr(study, column, rating[key])
        study.config_sha256 = hashlib.sha256(study.config_text.encode("utf-8")).hexdigest()
        study.save()


class Migration(migrations.Migration):

    dependencies = [
        ('ratings', '0006_rating_matches_item'),
    ]

    operations = [
        migrations.RunPython(design_into_config, design_into_columns),
        migrations.RemoveField(
            model_name='study',
            name='assignment',
        ),
        migrations.RemoveField(
            model_name='study',
            name='break_every',
        ),
        migrations.RemoveField(
            model_name='study',
            name='calibration_images',
        ),
        migrations.RemoveField(
            model_name='study',
            name='config_sha256',
        ),
        migrations.RemoveField(
            model_name='study',
            name='gold_items',
        ),
        migrations.RemoveField(
            model_name='study',
            name='items_per_rater',
        ),
        migrations.RemoveField(
            model_name='study',
            name='raters_target',
        ),
        migrations.RemoveField(
            model_name='study',
            name='ratings_per_stimulus',
        ),
        migrations.RemoveField(
            model_name='study',
            name='repeat_dataset',
        ),
        migrations.RemoveField(
            model_name='study',
            name='repeat_images',
        ),
        migrations.RemoveField(
            model_name='study',
            name='repeat_method',
        ),
        migrations.AlterField(
            model_name='study',
            name='config',
            field=models.JSONField(help_text="the parsed study file; config['rating'] is the rating design"),
        ),
        migrations.AlterField(
            model_name='study',
            name='name',
            field=models.SlugField(max_length=100, unique=True, validators=[ratings.study_file.validate_study_name]),
        ),
    ]
