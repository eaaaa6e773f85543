"""The demo Django project that hosts the progress app; loads Celery with Django."""

from .celery import app as celery_app

__all__ = ("celery_app",)
