"""Helpers the tests share: the real processes (devstack), and the figures a run reports."""

from __future__ import annotations

from collections import Counter

from devstack.processes import (
    PYTHON,
    ROOT,
    RedisServer,
    Service,
    free_port,
    login,
    manage,
    redis_server_binary,
    test_env,
    wait_for,
)

__all__ = [
    "FIGURES",
    "FUZZED",
    "PYTHON",
    "ROOT",
    "RedisServer",
    "Service",
    "free_port",
    "login",
    "manage",
    "record_figure",
    "redis_server_binary",
    "test_env",
    "wait_for",
]

# Figures the fault tests measure, printed at the end of the run (tests/plugin.py)
# and quoted in docs/reliability.md.
FIGURES: list[tuple[str, str]] = []
# Inputs the fuzz tests threw at the server, by kind; any server error fails the test.
FUZZED: Counter[str] = Counter()


def record_figure(name: str, value: str) -> None:
    FIGURES.append((name, value))
