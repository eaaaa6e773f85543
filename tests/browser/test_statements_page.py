"""The statements page in Chromium: {% progress_bar %} wires itself up and watch() tells the
page when the statement is ready, with no JS of the app's own beyond watch()."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, expect

from tests.helpers.browser import log_in, shoot
from tests.helpers.stack import Stack

pytestmark = pytest.mark.browser


def test_a_statement_bar_goes_live_and_the_page_says_it_is_ready(
    stack: Stack, browser: Browser
) -> None:
    context = browser.new_context(viewport={"width": 1000, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    log_in(page, stack, "bob")
    page.goto(f"{stack.base_url}/statements/")
    page.fill('input[name="month"]', "2026-07")
    page.fill('input[name="rows"]', "150")
    page.fill('input[name="seconds"]', "4")
    page.get_by_role("button", name="Request").click()

    card = page.locator('[data-statement="2026-07"]')
    widget = card.locator("[data-progress-bar]")
    # The server drew the bar; the widget took it over and keeps it live.
    expect(widget).to_have_attribute("data-progress-wired", "", timeout=10_000)
    expect(widget).to_have_attribute("data-state", "PROGRESS", timeout=15_000)
    expect(widget.locator('[data-field="message"]')).to_contain_text("Step", timeout=10_000)
    shoot(page, "statements.png")
    expect(widget).to_have_attribute("data-state", "SUCCESS", timeout=30_000)
    expect(widget.locator("progress")).to_have_attribute("value", "100")
    expect(widget.locator('[data-field="result"] a')).to_have_text("Download")

    # watch() from client.js: the statement finished while the page was open.
    expect(page.locator("[data-live-notice]")).to_have_text(
        "Your statement for 2026-07 is ready.", timeout=10_000
    )
    # The job_finished receiver's notification is there after a reload, and the finished
    # bar is drawn at once without news of it.
    page.reload()
    expect(page.locator("[data-notices]")).to_contain_text("Your statement for 2026-07 is ready.")
    expect(page.locator('[data-statement="2026-07"] [data-progress-bar]')).to_have_attribute(
        "data-state", "SUCCESS"
    )
    expect(page.locator("[data-live-notice]")).to_have_text("")
    assert errors == []
    context.close()
