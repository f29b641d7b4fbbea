from django.apps import AppConfig


class AnalysisConfig(AppConfig):
    """Only for the management commands: the analysis modules themselves never import Django."""

    name = "analysis"
    verbose_name = "MOS analysis"
