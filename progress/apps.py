"""The progress app's configuration."""

from django.apps import AppConfig


class ProgressConfig(AppConfig):
    name = "progress"
    verbose_name = "Progress"

    def ready(self) -> None:
        """Runs once Django is set up: registers system checks and signal handlers."""
        from . import checks, sessions, worker  # noqa: F401
