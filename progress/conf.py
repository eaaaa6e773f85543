"""The app's settings: one PROGRESS dict, read here with defaults. Every process."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed

DEFAULTS: dict[str, Any] = {
    # Redis for job states and socket counts; usually the channel layer's server.
    "REDIS_URL": None,
    # Redis Sentinel: (host, port) pairs of the sentinels and the name of the primary
    # they watch. When set, job states go to whichever server the sentinels name
    # primary, and REDIS_URL gives only the database number and password.
    "REDIS_SENTINELS": [],
    "REDIS_SENTINEL_MASTER": None,
    # Connection options for the sentinels themselves, e.g. {"password": ...}.
    "REDIS_SENTINEL_KWARGS": {},
    # Seconds between two published progress states of one job; state changes
    # and the last state of a burst always go out.
    "THROTTLE": 0.1,
    # Seconds between two database writes of a running job's progress.
    "DB_WRITE_INTERVAL": 2.0,
    # Finished jobs a socket's snapshot carries besides the unfinished ones.
    "SNAPSHOT_FINISHED": 20,
    # Jobs GET /api/jobs/ returns at most, newest first.
    "LIST_LIMIT": 100,
    # Seconds a job's latest state stays in Redis after its last change.
    "STATE_TTL": 7 * 24 * 3600,
    # Seconds a finished job is kept: older ones are deleted, with their Redis
    # state and result file, by `manage.py progress purge` or the periodic task
    # progress.purge_finished. 0 keeps them forever.
    "RETENTION": 30 * 24 * 3600,
    # Who may see whose jobs: the dotted path of a rule (progress/permissions.py).
    "VISIBILITY": "progress.permissions.own_or_staff",
    # Log lines a job keeps (in Redis while it runs, on its row once it ends); the
    # newest are kept. Task code logs with `logging` or progress.log().
    "LOG_LINES": 500,
    # The lowest level of the `logging` records a job keeps ("DEBUG", "INFO", ...).
    "LOG_LEVEL": "INFO",
    # Per-user limits; 0 means no limit.
    "MAX_RUNNING_JOBS": 0,
    "MAX_SOCKETS": 0,
    "MAX_LAUNCHES_PER_MINUTE": 0,
    # The largest client WebSocket frame; larger ones close the socket with 1009.
    "MAX_FRAME_BYTES": 4096,
    # The largest HTTP request body the JSON API reads.
    "MAX_BODY_BYTES": 64 * 1024,
    # Seconds between a socket's re-joins of its groups (channels-redis expires them).
    "HEARTBEAT": 60.0,
    # Seconds between a web process's checks that Redis kept its data, and its
    # re-reads of the running jobs it shows, which catch states the layer dropped.
    "RECONCILE_INTERVAL": 5.0,
    # Seconds a running job's worker may go unheard before the job is presumed
    # lost; such a job ends FAILURE within about 2.2 times this.
    "WORKER_LOST_AFTER": 15.0,
    # Seconds between re-checks of each socket's session: a socket of a user
    # deactivated, or of a session deleted or expired, closes within this.
    # (A logout closes its sockets at once.)
    "SESSION_RECHECK": 30.0,
    # Seconds the publisher keeps retrying a state Redis could not take.
    "PUBLISH_RETRY_FOR": 300.0,
    # Seconds between SSE keep-alive comments.
    "SSE_KEEPALIVE": 15.0,
    # The bearer token GET /metrics/ asks of Prometheus (staff signed in need none);
    # empty turns the endpoint off (404).
    "METRICS_TOKEN": "",
    # The template the app's pages (dashboard, job, history) extend: the app's own page, or
    # the host's layout, which needs the blocks title, content and scripts (progress.E008).
    "BASE_TEMPLATE": "progress/base.html",
}

_NUMBERS = {key for key, value in DEFAULTS.items() if isinstance(value, int | float)}
_TEXTS = {"VISIBILITY", "LOG_LEVEL", "BASE_TEMPLATE"}
# Texts that may be empty, which turns their feature off.
_OPTIONAL_TEXTS = {"METRICS_TOKEN"}


def validate(user_settings: object) -> dict[str, Any]:
    """Merges the user's PROGRESS dict over the defaults; unknown keys and bad values raise."""
    if user_settings is None:
        user_settings = {}
    if not isinstance(user_settings, dict):
        raise ImproperlyConfigured("PROGRESS must be a dict.")
    unknown = sorted(set(user_settings) - set(DEFAULTS))
    if unknown:
        raise ImproperlyConfigured(
            f"Unknown PROGRESS setting(s): {', '.join(unknown)}. "
            f"Valid keys: {', '.join(sorted(DEFAULTS))}."
        )
    for key in _NUMBERS & set(user_settings):
        value = user_settings[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ImproperlyConfigured(f"PROGRESS[{key!r}] must be a number >= 0, not {value!r}.")
    for key in _TEXTS & set(user_settings):
        value = user_settings[key]
        if not isinstance(value, str) or not value:
            raise ImproperlyConfigured(
                f"PROGRESS[{key!r}] must be a non-empty string, not {value!r}."
            )
    for key in _OPTIONAL_TEXTS & set(user_settings):
        value = user_settings[key]
        if not isinstance(value, str):
            raise ImproperlyConfigured(f"PROGRESS[{key!r}] must be a string, not {value!r}.")
    level = user_settings.get("LOG_LEVEL", DEFAULTS["LOG_LEVEL"])
    if not isinstance(logging.getLevelName(level), int):
        raise ImproperlyConfigured(f"PROGRESS['LOG_LEVEL'] must be a logging level, not {level!r}.")
    return {**DEFAULTS, **user_settings}


class ProgressSettings:
    """Attribute access to the PROGRESS settings, re-read when tests override them."""

    def __init__(self) -> None:
        self._cache: dict[str, Any] | None = None

    def _values(self) -> dict[str, Any]:
        if self._cache is None:
            self._cache = validate(getattr(settings, "PROGRESS", None))
        return self._cache

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"No PROGRESS setting named {name!r}.")
        return self._values()[name]

    def reload(self) -> None:
        self._cache = None


progress_settings = ProgressSettings()


def _reload(*, setting: str, **kwargs: Any) -> None:
    """Runs when a test overrides settings."""
    if setting == "PROGRESS":
        progress_settings.reload()


setting_changed.connect(_reload)
