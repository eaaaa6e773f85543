"""The statements app: loads its task and its signal receivers in every process."""

from django.apps import AppConfig


class StatementsConfig(AppConfig):
    name = "statements"
    verbose_name = "Statements"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Runs once Django is set up, in web and worker processes alike."""
        from . import receivers, tasks  # noqa: F401
