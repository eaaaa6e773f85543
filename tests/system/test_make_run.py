"""`make run` as the quick start runs it, then `manage.py` typed as is in a second terminal.

A copy of the checkout (its tracked files, and this checkout's .venv) runs `make run` with no
environment beyond PATH and HOME, as a new user's shell would have. The first start writes
.env; a second terminal's `manage.py progress launch ... --watch` then reaches the same Redis
and database, and its job ends SUCCESS on the worker `make run` started.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import ROOT, free_port, wait_for


def shell_env(**extra: str) -> dict[str, str]:
    """What a new terminal has: no REDIS_URL, DEBUG or SECRET_KEY of the test run's."""
    return {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), **extra}


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tracked files, with their times (so make sees the venv up to date), and the venv."""
    copy = tmp_path_factory.mktemp("checkout")
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split("\0")
    for name in filter(None, tracked):
        target = copy / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    (copy / ".venv").symlink_to(ROOT / ".venv")
    return copy


@pytest.fixture(scope="module")
def running(checkout: Path) -> Iterator[tuple[Path, int, subprocess.Popen[bytes]]]:
    port = free_port()
    log = (checkout / "make-run.log").open("wb")
    make = subprocess.Popen(
        ["make", "run"], cwd=checkout, env=shell_env(PORT=str(port)),
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip

    def serving() -> bool:
        if make.poll() is not None:
            raise AssertionError((checkout / "make-run.log").read_text()[-3000:])
        return httpx.get(f"http://127.0.0.1:{port}/accounts/login/").status_code == 200

    try:
        wait_for(serving, timeout=120, interval=0.2)
        yield checkout, port, make
    finally:
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGTERM)
            make.wait(30)
        log.close()


def dotenv(checkout: Path) -> dict[str, str]:
    lines = (checkout / ".env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_the_first_start_writes_a_dotenv_for_every_process(
    running: tuple[Path, int, subprocess.Popen[bytes]],
) -> None:
    checkout, _port, _make = running
    values = dotenv(checkout)
    assert values["DEBUG"] == "1" and len(values["SECRET_KEY"]) >= 50
    assert values["REDIS_URL"] == f"redis://127.0.0.1:{values['PRIVATE_REDIS_PORT']}/0"
    # The Redis that make run started listens where .env says.
    output = (checkout / "make-run.log").read_text()
    started = re.search(r"Using a private Redis: \S+ on port (\d+)", output)
    assert started and started.group(1) == values["PRIVATE_REDIS_PORT"]


def test_manage_py_in_a_second_terminal_launches_and_watches_a_job_to_success(
    running: tuple[Path, int, subprocess.Popen[bytes]],
) -> None:
    checkout, _port, _make = running
    done = subprocess.run(
        [".venv/bin/python", "manage.py", "progress", "launch", "demo.count", "steps=3",
         "delay=0.1", "--user", "demo", "--watch", "--json", "--timeout", "60"],
        cwd=checkout, env=shell_env(), capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert '"state": "SUCCESS"' in done.stdout or '"state":"SUCCESS"' in done.stdout


def manage(checkout: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """`.venv/bin/python manage.py ...` typed in a second terminal."""
    return subprocess.run(
        [".venv/bin/python", "manage.py", *args],
        cwd=checkout, env=shell_env(), capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def rows(checkout: Path, ids: list[str]) -> dict[str, dict[str, object]]:
    """The jobs' rows as the database keeps them, read once Redis is gone too."""
    code = (
        "import json; from progress.models import Job; "
        f"print(json.dumps({{str(j.pk): {{'state': j.state, 'error': j.error, 'log': len(j.log)}} "
        f"for j in Job.objects.filter(pk__in={ids!r})}}))"
    )
    done = manage(checkout, "shell", "-c", code)
    assert done.returncode == 0, done.stderr
    found: dict[str, dict[str, object]] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def test_sigterm_ends_running_jobs_saying_why_keeps_their_logs_and_prints_no_traceback(
    running: tuple[Path, int, subprocess.Popen[bytes]],
) -> None:
    """The last test of the module: it stops `make run` (SIGTERM to make's process group, as a
    terminal's Ctrl-C or a service manager sends it) while two jobs run."""
    checkout, port, make = running
    redis_port = int(dotenv(checkout)["PRIVATE_REDIS_PORT"])
    ids = []
    for _ in range(2):
        done = manage(checkout, "progress", "launch", "demo.count", "steps=600", "delay=0.05",
                      "--user", "demo")  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        ids.append(done.stdout.split()[-1])  # It prints the job's id.
    log = checkout / "make-run.log"
    # Both running, each with a log line kept in Redis (one per tenth of its steps).
    wait_for(lambda: log.read_text().count("Counted 60 of 600") >= 2, timeout=60, interval=0.2)
    before = len(log.read_text())
    os.killpg(make.pid, signal.SIGTERM)
    make.wait(60)

    def refused(target: int) -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", target)) != 0

    wait_for(lambda: refused(port) and refused(redis_port), timeout=15)
    stop = log.read_text()[before:]
    assert "Traceback" not in stop, stop[-4000:]
    assert "WorkerLostError" not in stop and "Could not publish" not in stop, stop[-4000:]
    # In order: the web first, Redis last.
    order = [stop.index(f"stopping {name}") for name in ("web", "beat", "worker", "redis")]
    assert order == sorted(order), stop[-4000:]
    for job_id, row in rows(checkout, ids).items():
        assert row["state"] == "FAILURE", (job_id, row)
        assert str(row["error"]).startswith("Stopped: the service shut down"), (job_id, row)
        assert isinstance(row["log"], int) and row["log"] >= 1, (job_id, row)
