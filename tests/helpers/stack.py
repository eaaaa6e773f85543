"""The service on real processes for system and browser tests: a Stack, its sockets, launches."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from websockets.sync.client import ClientConnection, connect

from devstack.processes import PYTHON, Service, free_port, login, manage, test_env, wait_for

FINAL = {"SUCCESS", "FAILURE", "REVOKED"}


USERS = {"alice": False, "bob": False, "staff": True}


PASSWORD = "a-long-test-password"


class Stack:
    """The service on real processes: a Celery worker and a web server, one Redis, one database.

    Its processes can be stopped, killed and started again (the fault tests do), and
    the web server keeps its port across restarts, so that clients reconnect to it.
    Every process runs tests.stack.settings: the project's settings plus test tasks,
    tuned through TEST_PROGRESS and TEST_LAYER (see that module).
    """

    def __init__(self, workdir: Path, redis_url: str, **env: str) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        # A database of its own on the PostgreSQL server of DATABASE_URL, if that is
        # one, and dropped by stop(); a stack given DATABASE_URL shares that one.
        self.own_database: str | None = None
        if "DATABASE_URL" not in env:
            env["DATABASE_URL"] = self._database_url(workdir)
        self.env = test_env(
            DJANGO_SETTINGS_MODULE="tests.stack.settings",
            DEBUG="0",
            SECRET_KEY="stack-secret-key-for-tests",
            ALLOWED_HOSTS="127.0.0.1,localhost",
            REDIS_URL=redis_url,
            MEDIA_ROOT=str(workdir / "media"),
            STATIC_ROOT=str(workdir / "static"),
            # Mail the statements app sends lands in files a test can read.
            EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend",
            EMAIL_FILE_PATH=str(workdir / "mail"),
        )
        self.env.update(env)
        self.worker: Service | None = None
        self.web: Service | None = None
        self._logs = 0

    @property
    def services(self) -> list[Service]:
        return [service for service in (self.worker, self.web) if service is not None]

    @property
    def origin(self) -> str:
        return self.base_url

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://") + "/ws/progress/"

    def prepare(self) -> None:
        """Migrates, collects static files and creates the test users."""
        manage(self.env, "migrate", "--noinput", "-v0")
        manage(self.env, "collectstatic", "--noinput", "-v0")
        self.create_users(USERS)

    def create_users(self, users: dict[str, bool]) -> None:
        create = "; ".join(
            f"U.objects.create_user({name!r}, email='{name}@example.com',"
            f" password={PASSWORD!r}, is_staff={staff})"
            for name, staff in users.items()
        )
        script = f"from django.contrib.auth.models import User as U; {create}"
        manage(self.env, "shell", "-c", script)

    def _log(self, name: str) -> Path:
        self._logs += 1
        return self.workdir / f"{self._logs:02d}-{name}.log"

    def start_worker(self, pool: str = "prefork", concurrency: int = 2, **env: str) -> Service:
        """Starts a Celery worker and waits until it is ready."""
        self.worker = Service(
            "worker",
            [PYTHON, "-m", "celery", "-A", "tasks_site", "worker", "-P", pool,
             "-c", str(concurrency), "-l", "info", "--without-mingle", "--without-gossip",
             "--without-heartbeat"],
            {**self.env, **env}, self._log("worker"),
        )  # fmt: skip
        worker = self.worker

        def ready() -> bool:
            if "ready." in worker.output():
                return True
            worker.assert_alive()
            return False

        wait_for(ready, timeout=60)
        return worker

    def start_web(self, *args: str, **env: str) -> Service:
        """Starts the ASGI server on the stack's port and waits until it answers; `args` are
        more uvicorn flags."""
        self.web = Service(
            "web",
            [PYTHON, "-m", "progress.server", "tasks_site.asgi:application", "--host",
             "127.0.0.1", "--port", str(self.port), "--lifespan", "off",
             "--ws-per-message-deflate", "false", "--ws-max-size", "65536", *args],
            {**self.env, **env}, self._log("web"),
        )  # fmt: skip
        web = self.web

        def answers() -> bool:
            web.assert_alive()
            return self._answers()

        wait_for(answers, timeout=30)
        return web

    def _answers(self) -> bool:
        return httpx.get(f"{self.base_url}/accounts/login/").status_code == 200

    def logs(self) -> str:
        """Everything every process of the stack has written so far."""
        logs = sorted(self.workdir.glob("*.log"))
        return "".join(log.read_text(errors="replace") for log in logs)

    def login(self, username: str) -> httpx.Client:
        return login(self.base_url, username, PASSWORD)

    def socket(self, client: httpx.Client | None, origin: str | None = "") -> JobSocket:
        headers = {}
        if client is not None:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
        if origin is not None:
            headers["Origin"] = origin or self.origin
        return JobSocket(
            connect(self.ws_url, additional_headers=headers, open_timeout=10, legacy=True)
        )

    @contextmanager
    def running(self) -> Iterator[Stack]:
        """Prepares the stack and runs a worker and a web server until the block ends."""
        try:
            self.prepare()
            self.start_worker()
            self.start_web()
            yield self
        finally:
            self.stop()

    def check_alive(self) -> None:
        for service in self.services:
            service.assert_alive()

    def _database_url(self, workdir: Path) -> str:
        """Runs once, from __init__: STACK_DATABASE_URL as it is, a new PostgreSQL database
        when DATABASE_URL names a PostgreSQL server, else a SQLite file in `workdir`."""
        if "STACK_DATABASE_URL" in os.environ:
            return os.environ["STACK_DATABASE_URL"]
        server = os.environ.get("DATABASE_URL", "")
        if not server.startswith(("postgres://", "postgresql://", "pgsql://")):
            return f"sqlite:///{workdir}/db.sqlite3"
        self.own_database = f"progress_stack_{uuid.uuid4().hex[:12]}"
        postgres(server, f'CREATE DATABASE "{self.own_database}"')
        return urlunsplit(urlsplit(server)._replace(path=f"/{self.own_database}"))

    def stop(self) -> None:
        for service in self.services:
            service.stop()
        if self.own_database is not None:
            # FORCE: a process killed by a fault test may have left a session open.
            drop = f'DROP DATABASE IF EXISTS "{self.own_database}" WITH (FORCE)'
            postgres(os.environ["DATABASE_URL"], drop)
            self.own_database = None


def postgres(url: str, statement: str) -> None:
    """Runs one statement, outside a transaction, in the `postgres` database of `url`'s server."""
    import psycopg  # Only the PostgreSQL runs need the driver.

    parts = urlsplit(url)
    maintenance = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    with psycopg.connect(maintenance, autocommit=True) as connection:
        connection.execute(statement.encode())


class JobSocket:
    """A real WebSocket client of /ws/progress/ that reads JSON frames."""

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn

    def recv(self, timeout: float = 10) -> dict[str, Any]:
        frame: dict[str, Any] = json.loads(self.conn.recv(timeout=timeout))
        return frame

    def send(self, frame: dict[str, Any]) -> None:
        self.conn.send(json.dumps(frame))

    def until_state(self, job_id: str, state: str, timeout: float = 30) -> dict[str, Any]:
        """The first state of the job in `state` this socket receives."""
        deadline = time.monotonic() + timeout
        while True:
            frame = self.recv(max(0.1, deadline - time.monotonic()))
            if frame["type"] == "job" and frame["job"]["id"] == job_id:
                if frame["job"]["state"] == state:
                    job: dict[str, Any] = frame["job"]
                    return job
                if frame["job"]["state"] in FINAL:
                    raise AssertionError(f"ended {frame['job']['state']} before {state}")

    def until_final(self, job_id: str, timeout: float = 30) -> list[dict[str, Any]]:
        """Every state of the job this socket receives, up to its final one."""
        states: list[dict[str, Any]] = []
        while True:
            frame = self.recv(timeout)
            if frame["type"] == "job" and frame["job"]["id"] == job_id:
                states.append(frame["job"])
                if frame["job"]["state"] in FINAL:
                    return states

    def close(self) -> None:
        self.conn.close()


def csrf(client: httpx.Client) -> dict[str, str]:
    return {"X-CSRFToken": client.cookies["csrftoken"]}


def launch(client: httpx.Client, task: str = "demo.count", **params: Any) -> dict[str, Any]:
    response = client.post(
        "/api/jobs/", json={"task": task, "params": params}, headers=csrf(client)
    )
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()
    return job
