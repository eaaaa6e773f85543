"""The checks of the app's pages: the template they extend, and whether their scripts would
be served. Run as `manage.py check` runs them, by run_checks()."""

from __future__ import annotations

import mimetypes

import pytest
from django.contrib.auth.models import User
from django.core.checks import CheckMessage, run_checks
from django.test import Client, override_settings

HOST_LAYOUT = (
    "{% load static %}<html><head><title>{% block title %}{% endblock %}</title>"
    "<link rel='stylesheet' href=\"{% static 'progress/progress.css' %}\"></head>"
    "<body><nav>the host's menu</nav>{% block content %}{% endblock %}"
    "{% block scripts %}{% endblock %}</body></html>"
)


def host_templates(**sources: str) -> override_settings:
    """Templates the host project has, beside the app's own."""
    return override_settings(
        TEMPLATES=[
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "OPTIONS": {
                    "loaders": [
                        ("django.template.loaders.locmem.Loader", sources),
                        "django.template.loaders.app_directories.Loader",
                    ],
                    "context_processors": [
                        "django.template.context_processors.request",
                        "django.contrib.auth.context_processors.auth",
                    ],
                },
            }
        ]
    )


def base(name: str) -> override_settings:
    return override_settings(PROGRESS={"REDIS_URL": "redis://127.0.0.1:1/0", "BASE_TEMPLATE": name})


def pages() -> list[CheckMessage]:
    return [m for m in run_checks(databases=[]) if m.id in {"progress.E008", "progress.W008"}]


def test_the_apps_own_page_passes() -> None:
    assert pages() == []


def test_a_base_template_that_does_not_exist_is_an_error_with_a_hint() -> None:
    with base("layouts/nowhere.html"):
        [message] = pages()
    assert message.id == "progress.E008" and "layouts/nowhere.html" in message.msg
    assert message.hint and "block scripts" in message.hint


def test_a_host_layout_without_the_scripts_block_is_an_error() -> None:
    # The mistake that loads a page whose bars never move: its scripts block named otherwise.
    layout = HOST_LAYOUT.replace("block scripts", "block js")
    with host_templates(**{"site.html": layout}), base("site.html"):
        [message] = pages()
    assert message.id == "progress.E008" and "scripts" in message.msg


def test_blocks_and_the_stylesheet_may_come_from_the_layouts_own_parent() -> None:
    child = '{% extends "site.html" %}{% block title %}Tools{% endblock %}'
    with host_templates(**{"site.html": HOST_LAYOUT, "tools.html": child}), base("tools.html"):
        assert pages() == []


def test_a_layout_that_does_not_load_the_stylesheet_is_a_warning() -> None:
    layout = HOST_LAYOUT.replace("progress/progress.css", "site.css")
    with host_templates(**{"site.html": layout}), base("site.html"):
        [message] = pages()
    assert message.id == "progress.W008" and message.hint


@pytest.mark.django_db
def test_the_pages_extend_the_host_layout_and_keep_their_scripts(alice: User) -> None:
    client = Client()
    client.force_login(alice)
    with host_templates(**{"site.html": HOST_LAYOUT}), base("site.html"):
        page = client.get("/progress/").content.decode()
    assert "the host's menu" in page and "progress/dashboard.js" in page


@pytest.mark.django_db
def test_by_default_the_pages_are_the_apps_own(alice: User) -> None:
    client = Client()
    client.force_login(alice)
    page = client.get("/progress/").content.decode()
    assert "progress/progress.css" in page and "progress/dashboard.js" in page
    assert 'href="/progress/history/"' in page


def static_ids() -> set[str]:
    return {m.id for m in run_checks(databases=[]) if m.id in {"progress.W009", "progress.W010"}}


def test_nothing_serving_static_files_is_a_warning_until_whitenoise_or_a_cdn_does() -> None:
    assert static_ids() == {"progress.W010"}  # The unit tier's settings serve none.
    with override_settings(MIDDLEWARE=["whitenoise.middleware.WhiteNoiseMiddleware"]):
        assert static_ids() == set()
    with override_settings(STATIC_URL="https://cdn.example.com/static/"):
        assert static_ids() == set()


def test_a_machine_that_types_js_wrongly_is_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    # The machine's MIME table stands in for a Windows registry that maps .js to text/plain.
    monkeypatch.setattr(mimetypes, "guess_type", lambda url, strict=True: ("text/plain", None))
    assert "progress.W009" in static_ids()
