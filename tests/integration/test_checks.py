"""System checks catch a misconfigured progress app."""

from __future__ import annotations

import pytest
from django.core.checks import CheckMessage
from django.core.checks import run_checks as run_all_checks
from django.test import override_settings


def run_checks() -> list[CheckMessage]:
    """The checks `manage.py check` runs. No database: from Django 6.1, run_checks() hands
    every alias to the model checks, which then need a connection these tests do not open."""
    return run_all_checks(databases=[])


def ids() -> set[str]:
    return {message.id for message in run_checks() if message.id and "progress" in message.id}


def test_the_project_as_configured_passes() -> None:
    assert ids() == set()


def test_a_missing_channel_layer_is_an_error() -> None:
    with override_settings(CHANNEL_LAYERS={}):
        assert "progress.E001" in ids()


def test_the_in_memory_layer_is_an_error_outside_debug_and_a_warning_in_it() -> None:
    memory = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    with override_settings(CHANNEL_LAYERS=memory, DEBUG=False):
        assert "progress.E002" in ids()
    with override_settings(CHANNEL_LAYERS=memory, DEBUG=True):
        assert "progress.W002" in ids()


def test_an_unknown_setting_is_an_error_with_a_hint() -> None:
    with override_settings(PROGRESS={"REDIS_URL": "redis://x", "TROTTLE": 1}):
        messages = [m for m in run_checks() if m.id == "progress.E003"]
    assert messages and "TROTTLE" in messages[0].msg and messages[0].hint


def test_a_missing_redis_url_is_an_error() -> None:
    with override_settings(PROGRESS={}):
        assert "progress.E004" in ids()


def test_a_visibility_rule_that_cannot_be_imported_is_an_error() -> None:
    with override_settings(PROGRESS={"REDIS_URL": "redis://x", "VISIBILITY": "nowhere.rule"}):
        messages = [m for m in run_checks() if m.id == "progress.E006"]
    assert messages and "nowhere.rule" in messages[0].msg and messages[0].hint


@pytest.mark.parametrize(
    "sentinel",
    [
        {"REDIS_SENTINELS": [("127.0.0.1", 26379)]},
        {"REDIS_SENTINEL_MASTER": "mymaster"},
        {"REDIS_SENTINELS": ["127.0.0.1:26379"], "REDIS_SENTINEL_MASTER": "mymaster"},
    ],
    ids=["sentinels-without-master", "master-without-sentinels", "not-host-port-pairs"],
)
def test_a_half_or_malformed_sentinel_setting_is_an_error(sentinel: dict[str, object]) -> None:
    with override_settings(PROGRESS={"REDIS_URL": "redis://x", **sentinel}):
        messages = [m for m in run_checks() if m.id == "progress.E007"]
    assert len(messages) == 1 and messages[0].hint


def test_a_whole_sentinel_setting_passes() -> None:
    sentinel = {"REDIS_SENTINELS": [("127.0.0.1", 26379)], "REDIS_SENTINEL_MASTER": "mymaster"}
    with override_settings(PROGRESS={"REDIS_URL": "redis://x", **sentinel}):
        assert "progress.E007" not in ids()


def test_no_celery_app_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from celery import Celery

    fallback = Celery("default", set_as_current=False)
    monkeypatch.setattr("progress.checks.celery.current_app", fallback)
    messages = [m for m in run_checks() if m.id == "progress.E005"]
    assert messages and messages[0].hint
