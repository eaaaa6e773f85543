"""App-only settings for the unit tier: the progress app alone, no demo project.

No Redis, Celery worker, browser or ASGI server runs: the Redis URL names a
port nobody listens on, the channel layer is in memory, and Celery only sends
tasks eagerly (no broker is reached). A unit test that needs more belongs in
tests/integration or tests/system.
"""

from __future__ import annotations

import tempfile

SECRET_KEY = "unit-tests-only"
DEBUG = False
USE_TZ = True
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "channels",
    "progress",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "tests.unit.urls"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]
STATIC_URL = "/static/"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
CELERY_TASK_ALWAYS_EAGER = True
CELERY_BROKER_URL = "memory://"
PROGRESS = {
    # Nothing listens there: a unit test that reached Redis would fail at once.
    "REDIS_URL": "redis://127.0.0.1:1/0",
}
# Files a unit test writes land in a directory of its own, never in the checkout.
MEDIA_ROOT = tempfile.mkdtemp(prefix="progress-unit-media-")
