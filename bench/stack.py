"""The Django stack a bench runs on, and the run that owns every process it starts.

A run (`bench_run`) has one temp dir for its databases, Redis data and server logs, and stops
every redis-server, server and helper process it started, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import httpx

from bench.harness import ERROR_LINE, log, terminate_as_interrupt
from devstack.processes import (
    PYTHON,
    ROOT,
    RedisServer,
    Service,
    cookie_header,
    free_port,
    login,
    manage,
    test_env,
    wait_for,
)

PASSWORD = "a-long-bench-password"
SECRET_KEY = "bench-secret-key-not-for-production"


# The stack's settings, database and users.


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


@dataclasses.dataclass
class Sessions:
    """Logged-in sessions made without the login form: the cookie's name and each user's."""

    cookie: str
    by_user: dict[str, str]


def create_users(
    env: dict[str, str], names: Iterable[str], sessions: Iterable[str] = ()
) -> Sessions:
    """Users `names` and `sessions` with PASSWORD; the `sessions` users also get a session each.

    One password hash serves all (PBKDF2 takes 0.7 s a user). Sessions come from Django's
    force_login: logging 100 users in through the form would cost the web ~70 s of PBKDF2.
    """
    users, logged_in = list(names), list(sessions)
    script = (
        "import json; from django.conf import settings; "
        "from django.contrib.auth.hashers import make_password; "
        "from django.contrib.auth.models import User; from django.test import Client; "
        f"h = make_password({PASSWORD!r}); "
        f"User.objects.bulk_create([User(username=n, password=h) for n in {users + logged_in!r}]); "
        "out = {}\n"
        f"for n in {logged_in!r}:\n"
        "    c = Client(); c.force_login(User.objects.get(username=n)); "
        "out[n] = c.cookies[settings.SESSION_COOKIE_NAME].value\n"
        "print(json.dumps({'cookie': settings.SESSION_COOKIE_NAME, 'sessions': out}))"
    )
    made = json.loads(manage(env, "shell", "-c", script).strip().splitlines()[-1])
    return Sessions(made["cookie"], made["sessions"])


def setup_django(env: dict[str, str]) -> None:
    """Django in this process, on the stack's database and Redis, as a worker has it."""
    os.environ.update(env)
    import django

    django.setup()
    logging.getLogger("httpx").setLevel(logging.WARNING)


def local_stack(
    run: BenchRun, users: Iterable[str] = (), static: bool = True, **settings: str
) -> tuple[dict[str, str], RedisServer]:
    """A private redis-server, a migrated database (and static files if `static`) with
    `users`, and Django set up in this process on them, as a worker has it; `settings` are
    more of the stack's settings. Returns the stack's environment and its redis-server."""
    redis = run.redis()
    env = django_env(run.workdir, redis, **settings)
    names = list(users)
    log(f"migrate{', collectstatic' if static else ''}, {len(names)} users")
    migrate(env, static)
    if names:
        create_users(env, names)
    setup_django(env)
    return env, redis


# A web server of the run.


class Web:
    """A web process on a free port of 127.0.0.1, and its URLs."""

    def __init__(self, service: Service, port: int) -> None:
        self.service = service
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}/ws/progress/"

    @property
    def pid(self) -> int:
        return self.service.process.pid

    def wait_serving(self) -> None:
        """Waits up to 60 s for the server to answer the login page; raises if it exits."""

        def ready() -> bool:
            self.service.assert_alive()
            return httpx.get(f"{self.base_url}/accounts/login/", timeout=5).status_code == 200

        wait_for(ready, timeout=60, interval=0.2)

    def login(self, username: str) -> httpx.Cookies:
        """The cookies of `username` logged in through the login form, as a browser would be."""
        client = login(self.base_url, username, PASSWORD)
        cookies = httpx.Cookies(client.cookies)
        client.close()
        return cookies

    def socket_headers(self, cookies: httpx.Cookies | dict[str, str]) -> dict[str, str]:
        """A browser tab's own headers for /ws/progress/: its session cookie and Origin."""
        return {"Cookie": cookie_header(cookies), "Origin": self.base_url}


def error_lines(service: Service, since: int = 0) -> list[str]:
    """The error lines the service logged after the first `since` characters of its log."""
    return ERROR_LINE.findall(service.output()[since:])


def server_failed(label: str, service: Service, exc: Exception) -> str:
    """Logs a failure and the tail of the server's output; returns the failure as text."""
    error = f"{type(exc).__name__}: {exc}"
    log(f"{label}: FAILED: {error}")
    tail = service.output()[-2000:]
    if tail.strip():
        log(f"{label}: last server output:\n{tail}")
    return error


# The run: what it started, and stopping all of it.


class BenchRun:
    """Every process a bench run starts, in one temp dir, so that all of them stop."""

    def __init__(self, prefix: str, keep: bool) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix=prefix))
        self.keep = keep
        self.interrupted = False
        self.services: list[Service] = []
        self.redises: list[RedisServer] = []
        self.children: list[asyncio.subprocess.Process] = []

    def redis(self, name: str = "redis") -> RedisServer:
        """A private redis-server on a free port, its data in the run's dir; started."""
        server = RedisServer(self.workdir / name)
        self.redises.append(server)
        server.start()
        log(f"{name}: private redis-server on port {server.port}")
        return server

    def service(self, name: str, argv: list[str], env: dict[str, str]) -> Service:
        """Starts a server process, its output in <name>.log in the run's dir."""
        service = Service(name, argv, env, self.workdir / f"{name}.log")
        self.services.append(service)
        return service

    def web(self, name: str, argv: Callable[[int], list[str]], env: dict[str, str]) -> Web:
        """Starts a web server on a free port, `argv(port)` its command line."""
        port = free_port()
        command = argv(port)
        log(f"{name}: starting {' '.join(command[2:])}")
        return Web(self.service(name, command, env), port)

    def stop(self, thing: Service | RedisServer) -> None:
        with contextlib.suppress(Exception):
            thing.stop()
        with contextlib.suppress(ValueError):
            if isinstance(thing, RedisServer):
                self.redises.remove(thing)
            else:
                self.services.remove(thing)

    async def spawn(self, script: str, *args: str, log_name: str) -> asyncio.subprocess.Process:
        """A bench helper (`python -m bench.<script>`) with JSON lines on stdin and stdout, in
        a session of its own, so that a Ctrl-C reaches only the bench, which ends it."""
        with (self.workdir / log_name).open("ab") as err:
            child = await asyncio.create_subprocess_exec(
                PYTHON, "-m", f"bench.{script}", *args,
                cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=err, start_new_session=True, limit=2**24,
            )  # fmt: skip
        self.children.append(child)
        return child

    async def finish(self, child: asyncio.subprocess.Process, timeout: float = 10) -> None:
        """Closes the helper's stdin, which ends it, and waits; kills it if it lingers."""
        if child.stdin is not None and not child.stdin.is_closing():
            child.stdin.close()
        try:
            await asyncio.wait_for(child.wait(), timeout)
        except TimeoutError:
            child.kill()
            await child.wait()
        with contextlib.suppress(ValueError):
            self.children.remove(child)

    async def finish_all(self, timeout: float = 5) -> None:
        """Ends every helper still running, on the loop that spawned them."""
        await asyncio.gather(*(self.finish(child, timeout) for child in list(self.children)))

    def close(self) -> None:
        """Stops everything still running, then removes the temp dir unless `keep`."""
        for child in self.children:
            if child.returncode is None:  # By pid: the loop that spawned it may be gone.
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signal.SIGKILL)
        self.children.clear()
        for service in reversed(self.services):
            self.stop(service)
        for server in list(self.redises):
            self.stop(server)
        if self.keep:
            log(f"kept {self.workdir} (server logs)")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)


@contextlib.contextmanager
def bench_run(prefix: str, keep: bool = False) -> Iterator[BenchRun]:
    """A run of a bench: signals unwind it, and it ends with every process stopped. An
    interrupted run ends the block early with `interrupted` set, for the caller's exit code."""
    run = BenchRun(prefix, keep)
    try:
        with terminate_as_interrupt():
            yield run
    except KeyboardInterrupt:
        run.interrupted = True
        log("interrupted; stopping every process")
    finally:
        run.close()


@dataclasses.dataclass
class Served:
    """How one configuration's web server went: its failure, and every error line it logged."""

    error: str | None = None
    errors: list[str] = dataclasses.field(default_factory=list)


def serve(
    run: BenchRun,
    label: str,
    name: str,
    argv: Callable[[int], list[str]],
    env: dict[str, str],
    measure: Callable[[Web], None],
) -> Served:
    """Runs `measure` on a web server of its own, once it answers, then stops the server.

    A failure is logged with the server's output and returned, not raised, so that the next
    configuration still runs; an interrupt is raised.
    """
    web = run.web(name, argv, env)
    served = Served()
    try:
        web.wait_serving()
        measure(web)
    except Exception as exc:
        served.error = server_failed(label, web.service, exc)
    finally:
        log(f"{label}: stopping the server")
        run.stop(web.service)
        served.errors = error_lines(web.service)
    return served
