"""What browser tests share: Debian's Chromium, logging in, launching from the page, axe-core.

Imported only by browser tests: it imports Playwright.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Literal

import pytest
from playwright.sync_api import BrowserContext, Locator, Page, WebSocketRoute, expect

from tests.helpers.stack import PASSWORD, Stack
from tests.support import ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

# The colour schemes the pages are checked in, as Browser.new_context(color_scheme=) takes them.
Scheme = Literal["light", "dark"]


# The machine has no internet: without these, Chromium keeps trying to reach Google.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def log_in(page: Page, stack: Stack, username: str) -> None:
    """Logs in through the login page and waits until the dashboard's socket is live."""
    page.goto(f"{stack.base_url}/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("[data-connection]")).to_have_text("live", timeout=10_000)


SCREENSHOTS = os.environ.get("PROGRESS_SCREENSHOTS")


def shoot(page: Page, name: str) -> None:
    if SCREENSHOTS:
        target = ROOT / SCREENSHOTS / name
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(target), full_page=True)


def block_web_sockets(context: BrowserContext) -> list[str]:
    """Closes every progress socket of the context's pages as soon as the page opens it, as a
    proxy that drops upgrades would; returns the URLs refused, in order."""
    refused: list[str] = []

    def drop(route: WebSocketRoute) -> None:
        refused.append(route.url)
        route.close()

    context.route_web_socket("**/ws/progress/", drop)
    return refused


def launch_form(page: Page, task: str, **fields: object) -> Locator:
    """Fills the dashboard's launch form of `task` and launches; returns the newest job's row."""
    form = page.locator(f'form[data-task="{task}"]')
    for name, value in fields.items():
        form.locator(f'[name="{name}"]').fill(str(value))
    form.get_by_role("button", name="Launch").click()
    return page.locator("article[data-job-id]").first


def launch_count(page: Page, steps: int, delay: float) -> Locator:
    """Launches demo.count from the dashboard's form; returns the newest job's row."""
    return launch_form(page, "demo.count", steps=steps, delay=delay)


AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"


SERIOUS = {"serious", "critical"}


def serious_violations(page: Page) -> list[dict[str, Any]]:
    """What axe-core (from npm, no CDN) finds serious or critical on the page as it stands."""
    if not AXE.exists():
        pytest.fail("axe-core is not installed; `make test` runs npm ci.")
    page.add_script_tag(path=str(AXE))
    results: dict[str, Any] = page.evaluate(
        "async () => await axe.run(document, {resultTypes: ['violations']})"
    )
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in results["violations"]
        if v["impact"] in SERIOUS
    ]
