"""The project as an app: its own management commands, and SQLite's journal mode."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db import connections
from django.db.models.signals import post_migrate


class TasksSiteConfig(AppConfig):
    name = "tasks_site"
    verbose_name = "Demo site"

    def ready(self) -> None:
        """Runs once Django is set up."""
        post_migrate.connect(_use_wal, sender=self)


def _use_wal(using: str = "default", **kwargs: Any) -> None:
    """Runs after migrate: puts a SQLite database in WAL mode, which the file then keeps.

    Setting it on every new connection (an init_command) cost a third of the time a
    socket's handshake took, in a storm of reconnects.
    """
    connection = connections[using]
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA journal_mode=WAL")
