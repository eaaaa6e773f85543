"""The project as an app, so that it can carry its own management commands."""

from django.apps import AppConfig


class TasksSiteConfig(AppConfig):
    name = "tasks_site"
    verbose_name = "Demo site"
