"""Accessibility in Chromium: axe-core finds no serious violation on any page, in light and
dark mode; phones get one column with nothing wider than the screen; the keyboard alone
launches and cancels a job."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.helpers.browser import Scheme, log_in, serious_violations, shoot
from tests.helpers.stack import Stack, csrf, launch

pytestmark = pytest.mark.browser


def pages_with_jobs(stack: Stack, page: Page) -> dict[str, str]:
    """Pages of a user with a running, a finished and a failed job, each to be checked."""
    client = stack.login("staff")
    try:
        running = launch(client, steps=300, delay=0.1)
        done = launch(client, "tests.echo", text="a line", steps=2, delay=0.01)
        launch(client, steps=3, delay=0.01, fail_at=2)
        page.goto(f"{stack.base_url}/")
        expect(page.locator(f'article[data-job-id="{done["id"]}"]')).to_have_attribute(
            "data-state", "SUCCESS", timeout=15_000
        )
        return {
            "dashboard": "/",
            "job page": f"/jobs/{running['id']}/",
            "finished job page": f"/jobs/{done['id']}/",
            "statements": "/statements/",
            "_cancel": f"/api/jobs/{running['id']}/cancel/",
        }
    finally:
        client.close()


# True once a live page's socket is open (after its snapshot), or at once on a static page.
LIVE_OR_STATIC = """() => {
  const status = document.querySelector("[data-connection]");
  return !status || status.dataset.status === "live";
}"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_no_page_has_a_serious_accessibility_violation(
    stack: Stack, browser: Browser, scheme: Scheme
) -> None:
    context = browser.new_context(color_scheme=scheme)
    page = context.new_page()
    page.goto(f"{stack.base_url}/accounts/login/")
    found = {"login": serious_violations(page)}
    log_in(page, stack, "staff")
    paths = pages_with_jobs(stack, page)
    cancel = paths.pop("_cancel")
    for name, path in paths.items():
        page.goto(f"{stack.base_url}{path}")
        expect(page.locator("[data-connection], [data-statements]").first).to_be_visible()
        # Live: the socket is open and the page has drawn its snapshot's rows.
        page.wait_for_function(LIVE_OR_STATIC)
        found[name] = serious_violations(page)
    # The open tray panel, and a toast.
    page.goto(f"{stack.base_url}/")
    page.locator("[data-tray-toggle]").click()
    found["tray"] = serious_violations(page)
    client = stack.login("staff")
    client.post(cancel, headers=csrf(client))
    client.close()
    assert {name: v for name, v in found.items() if v} == {}
    context.close()


@pytest.mark.parametrize(("path", "name"), [("/", "phone.png"), ("/statements/", None)])
def test_at_phone_width_pages_fit_the_screen(
    stack: Stack, browser: Browser, path: str, name: str | None
) -> None:
    context = browser.new_context(viewport={"width": 375, "height": 740}, is_mobile=True)
    page = context.new_page()
    log_in(page, stack, "alice")
    page.goto(f"{stack.base_url}{path}")
    page.wait_for_function(LIVE_OR_STATIC)
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 375, f"the page is {width}px wide on a 375px screen"
    if name:
        shoot(page, name)
    context.close()


def test_dark_mode_follows_the_system(stack: Stack, browser: Browser) -> None:
    colours = {}
    for scheme in ("light", "dark"):
        context = browser.new_context(color_scheme=scheme)
        page = context.new_page()
        log_in(page, stack, "alice")
        colours[scheme] = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
        if scheme == "dark":
            shoot(page, "dark.png")
        context.close()
    assert colours["light"] != colours["dark"]


def test_the_keyboard_alone_launches_and_cancels_a_job(stack: Stack, browser: Browser) -> None:
    context = browser.new_context()
    page = context.new_page()
    log_in(page, stack, "bob")
    form = page.locator('form[data-task="demo.count"]')
    steps = form.locator('input[name="steps"]')
    steps.focus()
    page.keyboard.press("Control+A")
    page.keyboard.type("500")
    page.keyboard.press("Tab")  # delay
    page.keyboard.press("Control+A")
    page.keyboard.type("0.1")
    page.keyboard.press("Enter")  # submits the form
    row = page.locator("article[data-job-id]").first
    expect(row).to_have_attribute("data-state", "PROGRESS", timeout=15_000)
    cancel = row.get_by_role("button", name="Cancel")
    cancel.focus()
    expect(cancel).to_be_focused()
    page.keyboard.press("Space")
    expect(row).to_have_attribute("data-state", "REVOKED", timeout=10_000)
    context.close()


def test_every_page_loads_from_its_own_origin_only(stack: Stack, browser: Browser) -> None:
    """No CDN, font host or analytics: users behind a firewall (and this machine) have none."""
    context = browser.new_context()
    page = context.new_page()
    requested: list[str] = []
    context.on("request", lambda request: requested.append(request.url))
    page.on("websocket", lambda socket: requested.append(socket.url))
    page.goto(f"{stack.base_url}/accounts/login/")
    log_in(page, stack, "alice")
    client = stack.login("alice")
    try:
        done = launch(client, "tests.echo", text="a line", steps=2, delay=0.01)
    finally:
        client.close()
    for path in ("/", f"/jobs/{done['id']}/", "/history/", "/statements/"):
        page.goto(f"{stack.base_url}{path}")
        page.wait_for_function(LIVE_OR_STATIC)
        page.wait_for_load_state("networkidle")
    origins = {urlsplit(url)._replace(path="", query="", fragment="").geturl() for url in requested}
    own = {stack.base_url, stack.base_url.replace("http://", "ws://")}
    assert origins - own == set()
    assert any(url.endswith(".js") for url in requested), "no script was loaded at all"
    context.close()
