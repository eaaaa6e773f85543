"""System checks (progress.E001...) that catch a misconfigured app. Every process, at start."""

from __future__ import annotations

import importlib.util
import mimetypes
from typing import Any

import celery
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured
from django.template import Context, TemplateDoesNotExist, TemplateSyntaxError
from django.template.base import Template as DjangoTemplate
from django.template.loader import get_template
from django.template.loader_tags import BlockNode, ExtendsNode
from django.utils.module_loading import import_string

from progress import conf

IN_MEMORY_LAYER = "channels.layers.InMemoryChannelLayer"
# What the app's pages fill in the template they extend: without "scripts", a page renders
# and its live bars never load.
PAGE_BLOCKS = ("content", "scripts")
STYLESHEET = "progress/progress.css"
WHITENOISE = "whitenoise.middleware.WhiteNoiseMiddleware"
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
    if values["METRICS_TOKEN"] and importlib.util.find_spec("prometheus_client") is None:
        messages.append(
            Warning(
                "PROGRESS['METRICS_TOKEN'] is set, but prometheus_client is not installed:"
                " GET /metrics/ answers 404.",
                hint="pip install 'django-live-progress[metrics]', or unset METRICS_TOKEN.",
                id="progress.W011",
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


@register(Tags.templates)
def check_pages(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Runs with every management command: the template the app's pages extend."""
    try:
        name = conf.validate(getattr(settings, "PROGRESS", None))["BASE_TEMPLATE"]
    except ImproperlyConfigured:
        return []  # progress.E003 says why.
    where = f"PROGRESS['BASE_TEMPLATE'] = {name!r}"
    hint = (
        "Name a template with {% block content %} and, before </body>, {% block scripts %}"
        " (and a {% block title %} in its <title>), or leave the default 'progress/base.html'."
    )
    try:
        chain = _extends_chain(name)
    except (TemplateDoesNotExist, TemplateSyntaxError) as exc:
        return [Error(f"{where} cannot be loaded: {exc!r}.", hint=hint, id="progress.E008")]
    if chain is None:  # Another template engine: nothing to read blocks from.
        return []
    blocks = {node.name for template in chain for node in _nodes(template, BlockNode)}
    missing = [block for block in PAGE_BLOCKS if block not in blocks]
    if missing:
        return [
            Error(
                f"{where} has no block {' or '.join(missing)}: the app's pages would render"
                " without their content or their live bars' scripts.",
                hint=hint,
                id="progress.E008",
            )
        ]
    if not any(STYLESHEET in (template.source or "") for template in chain):
        return [
            Warning(
                f"{where} does not load {STYLESHEET}: the app's pages would show unstyled.",
                hint='Add <link rel="stylesheet" href="{% static \'progress/progress.css\' %}">'
                " to its <head>, or silence progress.W008 if your own CSS bundles it.",
                id="progress.W008",
            )
        ]
    return []


@register(Tags.staticfiles)
def check_static(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Runs with every management command: would the browser get the app's ES modules?"""
    messages: list[CheckMessage] = []
    kind = mimetypes.guess_type("module.js")[0]
    if kind not in ("text/javascript", "application/javascript"):
        messages.append(
            Warning(
                f"This machine types .js files as {kind!r}: browsers refuse ES modules served"
                " so, and the app's bars would never load.",
                hint="Call mimetypes.add_type('text/javascript', '.js', True) in your settings.",
                id="progress.W009",
            )
        )
    static_url = str(getattr(settings, "STATIC_URL", "") or "")
    served_elsewhere = static_url.startswith(("http://", "https://", "//"))
    if not served_elsewhere and WHITENOISE not in getattr(settings, "MIDDLEWARE", []):
        messages.append(
            Warning(
                f"Nothing in MIDDLEWARE serves STATIC_URL ({static_url!r}): under an ASGI server"
                " (uvicorn, daphne) the app's scripts would answer 404, and its bars would"
                " stop at their first state.",
                hint=f"Add {WHITENOISE!r} right after SecurityMiddleware; or serve STATIC_ROOT"
                " from your proxy, or run runserver, which serves them in DEBUG, and silence"
                " progress.W010.",
                id="progress.W010",
            )
        )
    return messages


def _extends_chain(name: str) -> list[DjangoTemplate] | None:
    """The template and each it extends, for Django's template language; None for another."""
    found = getattr(get_template(name), "template", None)
    if not isinstance(found, DjangoTemplate):
        return None
    chain = [found]
    # A bound on the chain's length: a template that extends itself loops in Django too.
    for _ in range(20):
        extends = _nodes(chain[-1], ExtendsNode)
        parent = extends[0].parent_name.resolve(Context()) if extends else None
        if not isinstance(parent, str) or not parent:
            break
        chain.append(chain[-1].engine.get_template(parent))
    return chain


def _nodes(template: DjangoTemplate, kind: type[Any]) -> list[Any]:
    return list(template.nodelist.get_nodes_by_type(kind))
