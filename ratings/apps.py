from django.apps import AppConfig


class RatingsConfig(AppConfig):
    name = "ratings"
    verbose_name = "MOS studies and ratings"

    def ready(self):
        from . import pair_steps, report_tasks  # noqa: F401  register the pair step kinds, the build_report task
