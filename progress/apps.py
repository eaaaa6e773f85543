"""The progress app's configuration: wires checks and signal handlers. Every process."""

from django.apps import AppConfig


class ProgressConfig(AppConfig):
    name = "progress"
    verbose_name = "Progress"

    def ready(self) -> None:
        """Runs once Django is set up: registers system checks and signal handlers."""
        from progress import checks  # noqa: F401
        from progress.web import sessions  # noqa: F401
        from progress.worker import handlers, shutdown  # noqa: F401
