"""The app under a prefix, beside the host's own pages, in Chromium: the dashboard, a job's
page, the tray of a host page and the SSE fallback all reach the app where it is mounted.

The stack mounts it at /tools/progress/ (MOUNT_PROGRESS_AT) and the host's own home page
takes "/". Any request the pages make to an unprefixed path of the app fails the test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.helpers.browser import block_web_sockets, launch_count
from tests.helpers.stack import PASSWORD, Stack
from tests.support import RedisServer

pytestmark = pytest.mark.browser

PREFIX = "/tools/progress/"
# Paths of the app that would be the host's if the pages built them without the prefix.
UNPREFIXED = ("/api/", "/jobs/", "/history/")


@pytest.fixture(scope="module")
def mounted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    redis = RedisServer(tmp_path_factory.mktemp("prefix-redis"))
    redis.start()
    stack = Stack(tmp_path_factory.mktemp("prefix-stack"), redis.url, MOUNT_PROGRESS_AT=PREFIX[1:])
    try:
        with stack.running() as running:
            running.create_users({"mounted1": False, "mounted2": False})
            yield running
    finally:
        redis.stop()


def watch_requests(context: BrowserContext, stack: Stack) -> list[str]:
    """The path of every request the context's pages make to the stack, in order."""
    paths: list[str] = []
    base = len(stack.base_url)
    context.on(
        "request",
        lambda request: (
            paths.append(request.url[base:]) if request.url.startswith(stack.base_url) else None
        ),
    )
    return paths


def log_in(page: Page, stack: Stack, username: str) -> None:
    """Through the login page, which sends the user to the dashboard under the prefix."""
    page.goto(f"{stack.base_url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{stack.base_url}{PREFIX}")


def test_the_dashboard_a_job_page_and_a_host_pages_tray_work_under_the_prefix(
    mounted: Stack, browser: Browser
) -> None:
    context = browser.new_context()
    paths = watch_requests(context, mounted)
    dashboard = context.new_page()
    log_in(dashboard, mounted, "mounted1")
    expect(dashboard.locator("[data-connection]")).to_have_text("live", timeout=10_000)

    host = context.new_page()
    host.goto(f"{mounted.base_url}/")
    expect(host.get_by_role("heading", name="The host site")).to_be_visible()
    tray = host.locator("[data-progress-tray]")
    expect(tray).to_have_attribute("data-running", "0", timeout=10_000)

    row = launch_count(dashboard, steps=20, delay=0.1)
    job_id = row.get_attribute("data-job-id")
    expect(tray).to_have_attribute("data-running", "1", timeout=10_000)
    link = row.locator('[data-field="link"]')
    expect(link).to_have_attribute("href", f"{PREFIX}jobs/{job_id}/")

    job = context.new_page()
    job.goto(f"{mounted.base_url}{PREFIX}jobs/{job_id}/")
    expect(job.locator('[data-field="state"]').first).to_have_text("SUCCESS", timeout=20_000)
    expect(row.locator('[data-field="counts"]')).to_have_text("20 / 20", timeout=10_000)
    expect(tray).to_have_attribute("data-running", "0", timeout=10_000)

    assert f"{PREFIX}api/jobs/" in paths, "the launch went to the prefixed API"
    assert not [p for p in paths if p.startswith(UNPREFIXED)], paths
    context.close()


def test_the_fallback_streams_and_cancels_under_the_prefix(
    mounted: Stack, browser: Browser
) -> None:
    context = browser.new_context()
    refused = block_web_sockets(context)
    paths = watch_requests(context, mounted)
    page = context.new_page()
    log_in(page, mounted, "mounted2")
    status = page.locator("[data-connection]")
    expect(status).to_have_attribute("data-status", "live-sse", timeout=15_000)
    assert refused, "the socket was tried first"
    assert f"{PREFIX}api/events/" in paths

    row = launch_count(page, steps=1000, delay=0.1)
    expect(row).to_have_attribute("data-state", "PROGRESS", timeout=15_000)
    row.locator('button[data-action="cancel"]').click()
    expect(row.locator('[data-field="state"]')).to_have_text("REVOKED", timeout=15_000)

    assert any(p.startswith(f"{PREFIX}api/jobs/") and p.endswith("/cancel/") for p in paths)
    assert not [p for p in paths if p.startswith(UNPREFIXED)], paths
    context.close()
