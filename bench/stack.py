"""Starting the Django stack for a bench: its environment, database, users and servers."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import httpx

from bench.harness import log
from devstack.processes import PYTHON, RedisServer, Service, manage, test_env, wait_for

PASSWORD = "a-long-bench-password"
SECRET_KEY = "bench-secret-key-not-for-production"


def django_env(workdir: Path, redis: RedisServer, **extra: str) -> dict[str, str]:
    """The environment of the stack's processes: DEBUG off, the private redis-server, and a
    throwaway SQLite database, media and static root in `workdir`; `extra` adds settings."""
    return test_env(
        DEBUG="0",
        SECRET_KEY=SECRET_KEY,
        ALLOWED_HOSTS="127.0.0.1,localhost",
        REDIS_URL=redis.url,
        DATABASE_URL=f"sqlite:///{workdir / 'db.sqlite3'}",
        MEDIA_ROOT=str(workdir / "media"),
        STATIC_ROOT=str(workdir / "static"),
        DJANGO_SETTINGS_MODULE="tasks_site.settings",
        **extra,
    )


def migrate(env: dict[str, str], static: bool = True) -> None:
    """Creates the database's tables and, if `static`, collects the static files."""
    manage(env, "migrate", "--noinput", "-v0")
    if static:
        manage(env, "collectstatic", "--noinput", "-v0")


def create_users(env: dict[str, str], names: Iterable[str]) -> None:
    """Users with PASSWORD, made through manage.py shell (one password hash each)."""
    create = "; ".join(f"U.objects.create_user({name!r}, password={PASSWORD!r})" for name in names)
    manage(env, "shell", "-c", f"from django.contrib.auth.models import User as U; {create}")


def setup_django(env: dict[str, str]) -> None:
    """Django in this process, on the stack's database and Redis, as a worker has it."""
    os.environ.update(env)
    import django

    django.setup()
    logging.getLogger("httpx").setLevel(logging.WARNING)


def uvicorn_argv(port: int, *flags: str) -> list[str]:
    """uvicorn serving the project on 127.0.0.1, with the Procfile's flags but for `flags`."""
    return [PYTHON, "-m", "uvicorn", "tasks_site.asgi:application", "--host", "127.0.0.1",
            "--port", str(port), "--lifespan", "off", "--ws-max-size", "65536",
            *flags]  # fmt: skip


def wait_serving(server: Service, base_url: str) -> None:
    """Waits up to 60 s for the server to answer the login page; raises if it exits."""

    def ready() -> bool:
        server.assert_alive()
        return httpx.get(f"{base_url}/accounts/login/", timeout=5).status_code == 200

    wait_for(ready, timeout=60, interval=0.2)


def cookie_header(cookies: httpx.Cookies) -> str:
    """The Cookie header a browser would send with these cookies."""
    return "; ".join(f"{name}={value}" for name, value in cookies.items())


def redis_pid(redis: RedisServer) -> int:
    assert redis.process is not None
    return redis.process.pid


def start_redis(redis: RedisServer) -> None:
    redis.start()
    log(f"private redis-server on port {redis.port}")


def server_failed(label: str, server: Service, exc: Exception) -> str:
    """Logs a failure and the tail of the server's output; returns the failure as text."""
    error = f"{type(exc).__name__}: {exc}"
    log(f"{label}: FAILED: {error}")
    tail = server.output()[-2000:]
    if tail.strip():
        log(f"{label}: last server output:\n{tail}")
    return error


def clean_up(
    workdir: Path, keep: bool, redis: RedisServer, services: Iterable[Service] = ()
) -> None:
    """Stops what is still running, then removes the temp dir unless `keep`."""
    for service in list(services):
        service.stop(timeout=5)
    with contextlib.suppress(Exception):
        redis.stop()
    if keep:
        log(f"kept {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
