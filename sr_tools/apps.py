from django.apps import AppConfig


class SrToolsConfig(AppConfig):
    """Only management commands: no models, templates, static files or migrations."""

    name = "sr_tools"
    verbose_name = "SR model tools"
