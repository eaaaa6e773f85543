"""docs/integrating.md's five-minute guide, run on a new project, up to a live bar in Chromium.

`django-admin startproject mysite` and `startapp media` make the project; each code block of
the guide's first section that starts with a file's path is then applied as the guide says
(added to the end of mysite/settings.py, replacing any other file; a file's later blocks are
added to it). A step the guide leaves out fails here, not in a user's project.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tests.support import ROOT, RedisServer, free_port, wait_for

pytestmark = pytest.mark.browser

GUIDE = ROOT / "docs" / "integrating.md"
# A file's path opening a code block (or a part of one), as the guide writes it.
PYTHON_PATH = re.compile(r"^# ([\w/]+\.py)$", re.M)
TEMPLATE_PATH = re.compile(r"^\{# ([\w/]+\.html) #\}$")
USER, PASSWORD = "ada", "guide-pw-1"


def guide_files() -> list[tuple[str, str]]:
    """(path, text) of each part of a block with a path, in the guide's order."""
    text = GUIDE.read_text()
    section = text[text.index("## 1. Five-minute guide") : text.index("## 2. Launching")]
    parts: list[tuple[str, str]] = []
    for language, body in re.findall(r"```(\w+)\n(.*?)```", section, re.S):
        if language == "python":
            pieces = PYTHON_PATH.split(body)
            # split() gives [before, path, text, path, text, ...]; a block without a path
            # (an example, not a step) gives only [before].
            parts += list(zip(pieces[1::2], pieces[2::2], strict=True))
        elif language == "django" and (found := TEMPLATE_PATH.match(body.splitlines()[0])):
            parts.append((found.group(1), body))
    return parts


def run(project: Path, env: dict[str, str], *argv: str) -> str:
    done = subprocess.run(
        [sys.executable, *argv], cwd=project, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"{' '.join(argv)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The guide's project, migrated and served: its worker and progress.server running."""
    workdir = tmp_path_factory.mktemp("guide")
    project = workdir / "project"
    project.mkdir()
    redis = RedisServer(workdir / "redis")
    redis.start()
    base = redis.url.rsplit("/", 1)[0]
    # The app comes from this checkout, as `pip install -e` would give it.
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/root"),
        "PYTHONPATH": str(ROOT),
        "REDIS_URL": f"{base}/0",
        "CELERY_BROKER_URL": f"{base}/1",
    }
    run(project, env, "-m", "django", "startproject", "mysite", ".")
    run(project, env, "manage.py", "startapp", "media")
    written: set[str] = set()
    for path, text in guide_files():
        target = project / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if path in written or path == "mysite/settings.py":
            with target.open("a") as file:
                file.write("\n" + text)
        else:
            target.write_text(text)
        written.add(path)
    run(project, env, "manage.py", "migrate", "--noinput")
    checked = run(project, env, "manage.py", "check")
    assert "progress." not in checked, checked
    create = f"from django.contrib.auth.models import User; User.objects.create_user({USER!r}, password={PASSWORD!r})"  # noqa: E501
    run(project, env, "manage.py", "shell", "-c", create)

    port = free_port()
    logs = {name: (workdir / f"{name}.log").open("wb") for name in ("worker", "web")}
    commands = {
        "worker": ["-m", "celery", "-A", "mysite", "worker", "--loglevel", "info",
                   "--concurrency", "1"],
        "web": ["-m", "progress.server", "mysite.asgi:application", "--host", "127.0.0.1",
                "--port", str(port), "--ws-per-message-deflate", "false"],
    }  # fmt: skip
    processes = [
        subprocess.Popen(
            [sys.executable, *argv],
            cwd=project,
            env=env,
            stdout=logs[name],
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        for name, argv in commands.items()
    ]
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: httpx.get(f"{url}/accounts/login/").status_code == 200, timeout=30)
        yield url
    finally:
        for process in processes:
            process.terminate()
            process.wait(15)
        for log in logs.values():
            log.close()
        redis.stop()


def test_the_guides_project_shows_a_live_bar(site: str, browser: Browser) -> None:
    context = browser.new_context()
    page = context.new_page()
    frames: list[str] = []
    page.on(
        "websocket",
        lambda socket: socket.on("framereceived", lambda frame: frames.append(str(frame))),
    )
    page.goto(f"{site}/accounts/login/")
    page.fill("#id_username", USER)
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{site}/media/")
    page.fill('input[name="images"]', "5")
    page.get_by_role("button", name="Resize").click()

    expect(page).to_have_url(re.compile(rf"{re.escape(site)}/media/[0-9a-f-]{{36}}/$"))
    widget = page.locator("[data-progress-bar]")
    # The widget's script ran and its socket carried the job: the bar ends on SUCCESS at 100%.
    expect(widget).to_have_attribute("data-state", "SUCCESS", timeout=20_000)
    expect(widget.locator("progress")).to_have_attribute("value", "100")
    assert any('"SUCCESS"' in frame for frame in frames), frames

    # The app's own pages, under the guide's prefix, with no template of the project's.
    page.goto(f"{site}/progress/")
    expect(page.locator("[data-connection]")).to_have_text("live", timeout=10_000)
    expect(page.locator("article[data-job-id]").first).to_have_attribute(
        "data-state", "SUCCESS", timeout=10_000
    )
    context.close()
