"""Settings from the environment: `check --deploy` is clean, an unsafe SECRET_KEY is refused,
and every per-user limit is the environment's to set."""

from __future__ import annotations

import os
import secrets
import subprocess

import pytest

# Imported as a module: a bare `test_env` here would be collected as a test.
from tests import support

# Every variable tasks_site/settings.py reads: each test starts without any of them,
# so neither tests/plugin.py nor the developer's shell decides what the settings see.
SETTINGS_VARIABLES = (
    "DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS", "DATABASE_URL",
    "STATIC_ROOT", "MEDIA_ROOT", "SECURE_COOKIES", "TRUST_X_FORWARDED_PROTO",
    "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD", "REDIS_URL", "CHANNEL_LAYER", "CELERY_BROKER_URL",
    "PROGRESS_MAX_RUNNING_JOBS", "PROGRESS_MAX_SOCKETS", "PROGRESS_MAX_LAUNCHES_PER_MINUTE",
    "PROGRESS_THROTTLE", "LOG_LEVEL", "LOG_FORMAT", "PROGRESS_METRICS_TOKEN",
    "REDIS_SENTINELS", "REDIS_SENTINEL_MASTER", "REDIS_SENTINEL_PASSWORD",
)  # fmt: skip

DEV_ONLY_SECRET_KEY = "django-insecure-dev-only-key-do-not-use-in-production"


def production_env() -> dict[str, str]:
    """The production environment README.md and compose/docker-compose.yml document."""
    return {
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "progress.example.com",
        "SECURE_COOKIES": "1",
        "TRUST_X_FORWARDED_PROTO": "1",
        "SECURE_SSL_REDIRECT": "1",
        "SECURE_HSTS_SECONDS": "31536000",
        "REDIS_URL": os.environ["REDIS_URL"],
    }


def run_manage(settings: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in support.test_env().items() if k not in SETTINGS_VARIABLES}
    env.update(settings)
    return subprocess.run(
        [support.PYTHON, "manage.py", *args],
        cwd=support.ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_environment_passes_check_deploy() -> None:
    done = run_manage(production_env(), "check", "--deploy", "--fail-level", "WARNING")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "WARNING" not in output, output
    assert "System check identified no issues (0 silenced)." in output


def test_development_defaults_fail_check_deploy() -> None:
    done = run_manage({"DEBUG": "1"}, "check", "--deploy", "--fail-level", "WARNING")
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    for warning in ("security.W004", "security.W008", "security.W009", "security.W018"):
        assert warning in output, output


@pytest.mark.parametrize("secret_key", [None, ""], ids=["unset", "empty"])
def test_production_without_secret_key_is_refused(secret_key: str | None) -> None:
    settings = production_env()
    del settings["SECRET_KEY"]
    if secret_key is not None:
        settings["SECRET_KEY"] = secret_key
    done = run_manage(settings, "check")
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "ImproperlyConfigured: SECRET_KEY is not set" in output, output


def test_production_with_development_key_is_refused() -> None:
    done = run_manage({**production_env(), "SECRET_KEY": DEV_ONLY_SECRET_KEY}, "check")
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "ImproperlyConfigured: SECRET_KEY is the public development key" in output, output


def test_the_environment_sets_every_per_user_limit() -> None:
    """Load tests lift the limits (0), production sets them: the contract's variables."""
    limits = {
        "PROGRESS_MAX_RUNNING_JOBS": "3",
        "PROGRESS_MAX_SOCKETS": "4",
        "PROGRESS_MAX_LAUNCHES_PER_MINUTE": "5",
    }
    script = (
        "from progress.conf import progress_settings as p;"
        "print(p.MAX_RUNNING_JOBS, p.MAX_SOCKETS, p.MAX_LAUNCHES_PER_MINUTE)"
    )
    done = run_manage({**production_env(), **limits}, "shell", "-v", "0", "-c", script)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["3", "4", "5"]
    unset = run_manage(production_env(), "shell", "-v", "0", "-c", script)
    assert unset.stdout.split() == ["0", "0", "0"]
