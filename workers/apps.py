"""Loads the task modules in every process, so the web knows what users may launch."""

from django.apps import AppConfig


class WorkersConfig(AppConfig):
    name = "workers"
    verbose_name = "Demo tasks"

    def ready(self) -> None:
        """Runs once Django is set up, in web and worker processes alike."""
        from . import demo, reports  # noqa: F401
