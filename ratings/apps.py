from django.apps import AppConfig


class RatingsConfig(AppConfig):
    name = "ratings"
    verbose_name = "MOS studies and ratings"

    def ready(self):
        from . import report_tasks  # noqa: F401  registers the build_report task with Celery
