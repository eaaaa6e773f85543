"""compose/docker-compose.yml: valid for the compose client, and shaped for production.

No container engine runs here, so nothing is started. The client validates the file
when it is installed (Docker's `docker compose`, or Debian's docker-compose).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from tests.support import ROOT

COMPOSE_FILE = ROOT / "compose" / "docker-compose.yml"
ENV = {**os.environ, "SECRET_KEY": "x" * 50, "POSTGRES_PASSWORD": "secret"}


def compose_client() -> list[str] | None:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


# ${NAME}, ${NAME:-default} and ${NAME-default}, as compose substitutes them.
VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?:(?P<colon>:?)-(?P<default>[^}]*))?\}")


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """The values of a loaded compose file with its variables substituted, as compose does."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        found = env.get(match["name"])
        if match["default"] is None:
            return found or ""
        # ":-" also replaces an empty value; "-" only a missing one.
        return found if found or (found is not None and not match["colon"]) else match["default"]

    return VARIABLE.sub(substitute, value)


def test_interpolation_follows_compose() -> None:
    env = {"SET": "1", "EMPTY": ""}
    assert interpolate("${SET:-0}", env) == "1"
    assert interpolate("${EMPTY:-0}", env) == "0" and interpolate("${EMPTY-0}", env) == ""
    assert interpolate({"a": ["x${UNSET:-y}z", 3]}, env) == {"a": ["xyz", 3]}


@pytest.fixture(scope="module")
def resolved() -> dict[str, Any]:
    """The file as the compose client resolves it (anchors, defaults), else as YAML with
    its variables substituted the same way."""
    client = compose_client()
    if client is None:
        config: dict[str, Any] = interpolate(yaml.safe_load(COMPOSE_FILE.read_text()), ENV)
        return config
    done = subprocess.run(
        [*client, "-f", str(COMPOSE_FILE), "config"], capture_output=True, text=True, env=ENV
    )
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load(done.stdout)
    return config


def test_the_compose_client_validates_the_file() -> None:
    client = compose_client()
    if client is None:
        pytest.skip("no compose client here (docker compose or docker-compose)")
    done = subprocess.run(
        [*client, "-f", str(COMPOSE_FILE), "config", "-q"], capture_output=True, text=True, env=ENV
    )
    assert done.returncode == 0, done.stderr


def test_the_whole_stack_is_there_and_web_and_worker_scale(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    assert {"nginx", "web", "worker", "beat", "redis", "postgres", "migrate"} <= set(services)
    for name in ("web", "worker"):
        # --scale web=N needs no fixed name and no published port.
        assert "container_name" not in services[name] and "ports" not in services[name], name


def test_every_long_running_service_has_a_health_check(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    for name in ("nginx", "web", "worker", "redis", "postgres"):
        assert services[name].get("healthcheck", {}).get("test"), name


def test_production_settings(resolved: dict[str, Any]) -> None:
    env = resolved["services"]["web"]["environment"]
    assert str(env["DEBUG"]) == "0"
    assert str(env["SECURE_COOKIES"]) == "1" and str(env["TRUST_X_FORWARDED_PROTO"]) == "1"
    assert str(env["DATABASE_URL"]).startswith("postgres://")
    # The same settings for every Django process.
    assert resolved["services"]["worker"]["environment"] == env
