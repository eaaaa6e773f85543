"""Loads the test tasks in every process of a test stack, web and worker alike."""

from django.apps import AppConfig


class StackTestsConfig(AppConfig):
    name = "tests.stack"
    label = "stack_tests"
    verbose_name = "Test tasks"

    def ready(self) -> None:
        """Runs once Django is set up."""
        from . import tasks  # noqa: F401
