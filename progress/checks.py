"""System checks (progress.E001...) that catch a misconfigured app. Every process, at start."""

from __future__ import annotations

from typing import Any

import celery
from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from progress import conf

IN_MEMORY_LAYER = "channels.layers.InMemoryChannelLayer"
# The name of the app Celery makes up when a project has created none.
_CELERY_FALLBACK_APP = "default"


@register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Runs with every management command and at server start."""
    messages: list[CheckMessage] = []
    try:
        values = conf.validate(getattr(settings, "PROGRESS", None))
    except ImproperlyConfigured as exc:
        return [
            Error(
                str(exc),
                hint="Fix the PROGRESS dict in your settings; see docs/protocol.md.",
                id="progress.E003",
            )
        ]
    if not values["REDIS_URL"]:
        messages.append(
            Error(
                "PROGRESS['REDIS_URL'] is not set.",
                hint="Point it at the Redis server of the channel layer.",
                id="progress.E004",
            )
        )
    messages += _check_sentinels(values)
    try:
        import_string(values["VISIBILITY"])
    except ImportError as exc:
        messages.append(
            Error(
                f"PROGRESS['VISIBILITY'] = {values['VISIBILITY']!r} cannot be imported: {exc}",
                hint="Name a function (user, jobs) -> jobs, e.g."
                " 'progress.permissions.own_or_staff'.",
                id="progress.E006",
            )
        )
    if celery.current_app.main in (None, _CELERY_FALLBACK_APP):
        messages.append(
            Error(
                "No Celery app is loaded: launched jobs would never reach a worker.",
                hint="Create one with config_from_object('django.conf:settings',"
                " namespace='CELERY') and import it in your project's __init__.py.",
                id="progress.E005",
            )
        )
    layers = getattr(settings, "CHANNEL_LAYERS", {}) or {}
    backend = (layers.get("default") or {}).get("BACKEND")
    if not backend:
        messages.append(
            Error(
                "No default channel layer is configured.",
                hint="Set CHANNEL_LAYERS['default'] to channels_redis.core.RedisChannelLayer.",
                id="progress.E001",
            )
        )
    elif backend == IN_MEMORY_LAYER:
        check = Warning if settings.DEBUG else Error
        messages.append(
            check(
                "The in-memory channel layer cannot carry states from Celery workers.",
                hint="Use channels_redis.core.RedisChannelLayer.",
                id="progress.W002" if settings.DEBUG else "progress.E002",
            )
        )
    return messages


def _check_sentinels(values: dict[str, Any]) -> list[CheckMessage]:
    """Runs within check_settings: sentinels need a primary's name, and a name needs them."""
    sentinels, master = values["REDIS_SENTINELS"], values["REDIS_SENTINEL_MASTER"]
    hint = (
        "Set both PROGRESS['REDIS_SENTINELS'], a list of (host, port) pairs, and"
        " PROGRESS['REDIS_SENTINEL_MASTER'], the name the sentinels monitor (or neither)."
    )
    pairs = isinstance(sentinels, list | tuple) and all(
        isinstance(entry, list | tuple)
        and len(entry) == 2
        and isinstance(entry[0], str)
        and isinstance(entry[1], int)
        for entry in sentinels
    )
    if not pairs:
        problem = (
            f"PROGRESS['REDIS_SENTINELS'] must be a list of (host, port) pairs, not {sentinels!r}."
        )
    elif sentinels and not master:
        problem = "PROGRESS['REDIS_SENTINELS'] is set but PROGRESS['REDIS_SENTINEL_MASTER'] is not."
    elif master and not sentinels:
        problem = "PROGRESS['REDIS_SENTINEL_MASTER'] is set but PROGRESS['REDIS_SENTINELS'] is not."
    else:
        return []
    return [Error(problem, hint=hint, id="progress.E007")]
