"""The tray of every page in Chromium: live across tabs on one socket per tab, and a notice
when a job ends: a system notification in a hidden tab the user allowed, a toast otherwise."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.helpers.browser import launch_count, log_in
from tests.helpers.stack import Stack

pytestmark = pytest.mark.browser

# The Notification API and page visibility as the test sets them: headless Chromium has no
# notification centre, and a tab cannot be hidden from a test. Both stand in for real ones.
FAKE_NOTIFICATIONS = """
window.__shown = [];
window.__hidden = false;
Object.defineProperty(Document.prototype, "hidden", { get: () => window.__hidden });
window.Notification = class {
  static permission = "granted";
  static requestPermission() { return Promise.resolve("granted"); }
  constructor(title, options = {}) { window.__shown.push({ title, tag: options.tag }); }
};
"""


def sockets_opened(page: Page) -> list[str]:
    opened: list[str] = []
    page.on("websocket", lambda socket: opened.append(socket.url))
    return opened


def test_the_tray_follows_jobs_across_tabs_on_one_socket_each(
    stack: Stack, browser: Browser
) -> None:
    # A user of its own: no other job of theirs ends during the test.
    stack.create_users({"tray1": False})
    context = browser.new_context()
    dashboard = context.new_page()
    dashboard_sockets = sockets_opened(dashboard)
    log_in(dashboard, stack, "tray1")
    other = context.new_page()
    other_sockets = sockets_opened(other)
    other.goto(f"{stack.base_url}/statements/")
    tray = other.locator("[data-progress-tray]")
    expect(tray).to_have_attribute("data-running", "0", timeout=10_000)

    row = launch_count(dashboard, steps=30, delay=0.1)
    job_id = row.get_attribute("data-job-id")
    # The other tab's tray shows it running, with its count on the button.
    expect(tray).to_have_attribute("data-running", "1", timeout=10_000)
    expect(tray.locator("[data-tray-count]")).to_have_text("1")
    other.locator("[data-tray-toggle]").click()
    entry = tray.locator(f'li[data-job-id="{job_id}"]')
    expect(entry.locator("a")).to_have_text("Count")
    expect(entry).to_have_attribute("data-state", "SUCCESS", timeout=20_000)
    expect(tray).to_have_attribute("data-running", "0")
    # That tab is visible: a toast says so, once.
    expect(other.locator("[data-toast]")).to_have_text(["Count finished: SUCCESS"])
    # The dashboard's list, the tray and any widget share the page's one socket.
    assert len(dashboard_sockets) == 1 and len(other_sockets) == 1
    context.close()


def test_a_hidden_tab_shows_a_system_notification_and_a_visible_one_a_toast(
    stack: Stack, browser: Browser
) -> None:
    stack.create_users({"tray2": False})
    context = browser.new_context()
    context.add_init_script(FAKE_NOTIFICATIONS)
    visible = context.new_page()
    log_in(visible, stack, "tray2")
    hidden = context.new_page()
    hidden.goto(f"{stack.base_url}/statements/")
    expect(hidden.locator("[data-progress-tray]")).to_have_attribute("data-running", "0")
    hidden.evaluate("() => { window.__hidden = true; }")

    row = launch_count(visible, steps=5, delay=0.05)
    expect(row).to_have_attribute("data-state", "SUCCESS", timeout=15_000)
    job_id = row.get_attribute("data-job-id")
    hidden.wait_for_function("() => window.__shown.length > 0", timeout=10_000)
    assert hidden.evaluate("() => window.__shown") == [
        {"title": "Count finished: SUCCESS", "tag": job_id}
    ]
    assert hidden.locator("[data-toast]").count() == 0
    # The visible tab shows a toast instead, and no system notification.
    expect(visible.locator("[data-toast]")).to_have_text(["Count finished: SUCCESS"])
    assert visible.evaluate("() => window.__shown") == []
    context.close()


def test_the_tray_works_from_the_keyboard(stack: Stack, browser: Browser) -> None:
    context = browser.new_context()
    page = context.new_page()
    log_in(page, stack, "alice")
    toggle = page.locator("[data-tray-toggle]")
    toggle.focus()
    page.keyboard.press("Enter")
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(page.locator("[data-tray-panel]")).to_be_visible()
    page.keyboard.press("Tab")
    expect(page.locator("[data-tray-panel] a").first).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.locator("[data-tray-panel]")).to_be_hidden()
    expect(toggle).to_be_focused()
    context.close()
