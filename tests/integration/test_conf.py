"""The PROGRESS settings: defaults, overrides and unknown keys."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from progress.conf import DEFAULTS, progress_settings, validate


def test_defaults_apply_where_the_project_sets_nothing() -> None:
    with override_settings(PROGRESS={"REDIS_URL": "redis://x"}):
        assert progress_settings.THROTTLE == DEFAULTS["THROTTLE"]
        assert progress_settings.REDIS_URL == "redis://x"


def test_overrides_are_seen_at_once() -> None:
    with override_settings(PROGRESS={"MAX_SOCKETS": 3}):
        assert progress_settings.MAX_SOCKETS == 3
    assert progress_settings.MAX_SOCKETS == 0


def test_an_unknown_key_is_an_error_that_lists_the_valid_ones() -> None:
    with pytest.raises(ImproperlyConfigured, match=r"THROTLE.*Valid keys"):
        validate({"THROTLE": 1})


@pytest.mark.parametrize("value", [-1, "fast", None, True])
def test_numbers_must_be_numbers(value: object) -> None:
    with pytest.raises(ImproperlyConfigured, match="THROTTLE"):
        validate({"THROTTLE": value})


def test_the_environment_sets_the_per_user_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    import tasks_site.settings as site_settings

    monkeypatch.setenv("PROGRESS_MAX_RUNNING_JOBS", "4")
    monkeypatch.setenv("PROGRESS_MAX_SOCKETS", "9")
    reloaded = importlib.reload(site_settings)
    assert reloaded.PROGRESS["MAX_RUNNING_JOBS"] == 4
    assert reloaded.PROGRESS["MAX_SOCKETS"] == 9
    monkeypatch.delenv("PROGRESS_MAX_RUNNING_JOBS")
    monkeypatch.delenv("PROGRESS_MAX_SOCKETS")
    importlib.reload(site_settings)
