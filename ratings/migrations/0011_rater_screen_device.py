"""The rater's screen (CSS pixels) and device type, reported at consent (issue 18's viewing rules).

On SQLite, adding columns with defaults remakes the rater table, which the triggers of 0006 and 0008
name: they are lifted before the schema change and made again after, as in 0008 and 0010.
"""

import importlib

from django.db import migrations, models

CROWD_SESSIONS = importlib.import_module("ratings.migrations.0010_crowd_sessions")


class Migration(migrations.Migration):

    dependencies = [
        ('ratings', '0010_crowd_sessions'),
    ]

    operations = [
        migrations.RunPython(CROWD_SESSIONS.lift_triggers, CROWD_SESSIONS.restore_triggers),
        migrations.AddField(
            model_name='rater',
            name='screen',
            field=models.CharField(blank=True, help_text='window.screen in CSS pixels (1920x1080)', max_length=40),
        ),
        migrations.AddField(
            model_name='rater',
            name='device_type',
            field=models.CharField(blank=True, help_text='desktop, tablet or phone (ratings.worker_checks.classify_device)', max_length=10),
        ),
        migrations.RunPython(CROWD_SESSIONS.restore_triggers, CROWD_SESSIONS.lift_triggers),
    ]
