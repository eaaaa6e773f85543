"""`make run` as the quick start runs it, then `manage.py` typed as is in a second terminal.

A copy of the checkout (its tracked files, and this checkout's .venv) runs `make run` with no
environment beyond PATH and HOME, as a new user's shell would have. The first start writes
.env; a second terminal's `manage.py progress launch ... --watch` then reaches the same Redis
and database, and its job ends SUCCESS on the worker `make run` started.
"""

from __future__ import annotations

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


def test_sigterm_to_make_stops_every_process_and_the_redis(
    running: tuple[Path, int, subprocess.Popen[bytes]],
) -> None:
    checkout, port, make = running
    redis_port = int(dotenv(checkout)["PRIVATE_REDIS_PORT"])
    os.killpg(make.pid, signal.SIGTERM)
    make.wait(30)

    def refused(target: int) -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", target)) != 0

    wait_for(lambda: refused(port) and refused(redis_port), timeout=15)
