"""The Celery application.

With ``CELERY_BROKER_URL`` unset (a newcomer's first run) tasks execute in-process, eagerly, so no
Redis is needed; with it set, they go to the broker and any number of workers serve them.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mos_site.settings")

app = Celery("mos_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
