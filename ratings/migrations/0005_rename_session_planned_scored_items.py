from django.db import migrations, models


class Migration(migrations.Migration):
    """``Session.rated_items`` read as "ratings given" but counts the scored items planned: renamed."""

    dependencies = [
        ("ratings", "0004_stimulus_dists_niqe"),
    ]

    operations = [
        migrations.RenameField(model_name="session", old_name="rated_items", new_name="planned_scored_items"),
        migrations.AlterField(
            model_name="session",
            name="planned_scored_items",
            field=models.PositiveIntegerField(
                default=0, help_text="scored items planned for the session (test, repeat and gold), not ratings given"),
        ),
    ]
