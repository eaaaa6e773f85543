"""Fixtures: the real stack (Redis, a Celery worker, uvicorn) and logged-in clients."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from tests.support import PYTHON, Service, free_port, login, manage, test_env, wait_for

FINAL = {"SUCCESS", "FAILURE", "REVOKED"}
USERS = {"alice": False, "bob": False, "staff": True}
PASSWORD = "a-long-test-password"


@dataclass
class Stack:
    """A running service: its URL, its processes and the environment they share."""

    base_url: str
    env: dict[str, str]
    services: list[Service] = field(default_factory=list)

    @property
    def origin(self) -> str:
        return self.base_url

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://") + "/ws/progress/"

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

    def check_alive(self) -> None:
        for service in self.services:
            service.assert_alive()


class JobSocket:
    """A real WebSocket client of /ws/progress/ that reads JSON frames."""

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn

    def recv(self, timeout: float = 10) -> dict[str, Any]:
        frame: dict[str, Any] = json.loads(self.conn.recv(timeout=timeout))
        return frame

    def send(self, frame: dict[str, Any]) -> None:
        self.conn.send(json.dumps(frame))

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


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The whole service on real processes: migrate, a Celery worker, and uvicorn."""
    workdir = tmp_path_factory.mktemp("stack")
    redis_url = os.environ["REDIS_URL"].rsplit("/", 1)[0]
    port = free_port()
    env = test_env(
        DEBUG="0",
        SECRET_KEY="stack-secret-key-for-tests",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        # Databases 2 and 3: apart from the in-process tests' 0 and 1.
        REDIS_URL=f"{redis_url}/2",
        DATABASE_URL=os.environ.get("STACK_DATABASE_URL", f"sqlite:///{workdir / 'db.sqlite3'}"),
        MEDIA_ROOT=str(workdir / "media"),
        STATIC_ROOT=str(workdir / "static"),
    )
    manage(env, "migrate", "--noinput", "-v0")
    manage(env, "collectstatic", "--noinput", "-v0")
    create = "; ".join(
        f"U.objects.create_user({name!r}, password={PASSWORD!r}, is_staff={staff})"
        for name, staff in USERS.items()
    )
    manage(env, "shell", "-c", f"from django.contrib.auth.models import User as U; {create}")
    logs = Path(workdir)
    worker = Service(
        "worker",
        [PYTHON, "-m", "celery", "-A", "tasks_site", "worker", "-P", "prefork", "-c", "2",
         "-l", "info", "--without-mingle", "--without-gossip", "--without-heartbeat"],
        env, logs / "worker.log",
    )  # fmt: skip
    web = Service(
        "web",
        [PYTHON, "-m", "uvicorn", "tasks_site.asgi:application", "--host", "127.0.0.1",
         "--port", str(port), "--lifespan", "off", "--ws-per-message-deflate", "false",
         "--ws-max-size", "65536"],
        env, logs / "web.log",
    )  # fmt: skip
    running = Stack(base_url=f"http://127.0.0.1:{port}", env=env, services=[worker, web])
    try:
        wait_for(lambda: "ready." in worker.output() or worker.assert_alive(), timeout=60)
        wait_for(lambda: httpx.get(f"{running.base_url}/accounts/login/").status_code == 200, 30)
        yield running
    finally:
        for service in running.services:
            service.stop()


def _logged_in(username: str) -> Callable[[Stack], Iterator[httpx.Client]]:
    def fixture(stack: Stack) -> Iterator[httpx.Client]:
        client = stack.login(username)
        yield client
        client.close()

    fixture.__name__ = username
    return pytest.fixture(fixture, name=username)


alice = _logged_in("alice")
bob = _logged_in("bob")
staff = _logged_in("staff")
