"""The fallback in Chromium: with WebSockets dropped on the way, the page switches to SSE."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.helpers.browser import block_web_sockets, launch_count
from tests.helpers.stack import PASSWORD, Stack

pytestmark = pytest.mark.browser


def log_in_on_fallback(page: Page, stack: Stack, username: str) -> None:
    """Logs in through the login page and waits until the dashboard is live over SSE."""
    page.goto(f"{stack.base_url}/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="Log in").click()
    status = page.locator("[data-connection]")
    expect(status).to_have_attribute("data-status", "live-sse", timeout=15_000)
    expect(status).to_have_text("live (fallback)")


def test_with_web_sockets_blocked_the_bars_move_over_server_sent_events(
    stack: Stack, browser: Browser
) -> None:
    stack.create_users({"fallback1": False})
    context = browser.new_context()
    refused = block_web_sockets(context)
    page = context.new_page()
    streams: list[str] = []
    page.on("request", lambda request: streams.append(request.url))
    log_in_on_fallback(page, stack, "fallback1")
    assert len(refused) == 2, "two attempts, then the switch"
    assert f"{stack.base_url}/api/events/" in streams

    row = launch_count(page, steps=30, delay=0.15)
    expect(row).to_have_attribute("data-state", "PROGRESS", timeout=15_000)
    counts = row.locator('[data-field="counts"]')
    expect(counts).to_contain_text("/ 30", timeout=10_000)
    seen = counts.text_content()
    # The numbers move on: a later state arrived over the stream.
    expect(counts).not_to_have_text(seen or "", timeout=10_000)

    # A second tab of the same user is blocked too, and shows the same job over its own stream.
    job_id = row.get_attribute("data-job-id")
    other = context.new_page()
    other.goto(f"{stack.base_url}/")
    expect(other.locator("[data-connection]")).to_have_attribute(
        "data-status", "live-sse", timeout=15_000
    )
    other_row = other.locator(f'article[data-job-id="{job_id}"]')
    expect(other_row).to_be_visible(timeout=10_000)

    for tab_row in (row, other_row):
        expect(tab_row.locator('[data-field="state"]')).to_have_text("SUCCESS", timeout=30_000)
        expect(tab_row.locator('[data-field="counts"]')).to_have_text("30 / 30")
        expect(tab_row.locator("progress")).to_have_attribute("value", "100")
    assert len(refused) == 4, "each tab tried twice, and never again once on SSE"
    context.close()


def test_cancel_works_over_http_on_the_fallback(stack: Stack, browser: Browser) -> None:
    stack.create_users({"fallback2": False})
    context = browser.new_context()
    block_web_sockets(context)
    page = context.new_page()
    log_in_on_fallback(page, stack, "fallback2")
    row = launch_count(page, steps=1000, delay=0.1)
    expect(row).to_have_attribute("data-state", "PROGRESS", timeout=15_000)
    row.locator('button[data-action="cancel"]').click()
    expect(row.locator('[data-field="state"]')).to_have_text("REVOKED", timeout=15_000)
    context.close()
