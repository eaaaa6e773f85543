"""The dashboard in a real browser: Debian's headless Chromium, driven by Playwright."""

from __future__ import annotations

import json
import re
import time

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, WebSocketRoute, expect

from tests.helpers.browser import SCREENSHOTS, launch_count, launch_form, log_in, shoot
from tests.helpers.stack import Stack

pytestmark = pytest.mark.browser


def test_launch_and_watch_the_bar_reach_success_in_two_tabs(stack: Stack, browser: Browser) -> None:
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    log_in(page, stack, "alice")

    row = launch_count(page, steps=40, delay=0.15)
    expect(row).to_have_attribute("data-state", "PROGRESS", timeout=15_000)
    job_id = row.get_attribute("data-job-id")

    # A second tab of the same user shows the same job moving.
    other = context.new_page()
    other.goto(f"{stack.base_url}/")
    other_row = other.locator(f'article[data-job-id="{job_id}"]')
    expect(other_row).to_have_attribute("data-state", "PROGRESS", timeout=10_000)

    # A reload mid-job picks the bar up where it is, not from zero.
    expect(row.locator('[data-field="counts"]')).to_contain_text("/ 40", timeout=10_000)
    page.wait_for_function(
        "() => Number(document.querySelector('article[data-job-id] progress').value) >= 20"
    )
    shoot(page, "dashboard.png")
    page.reload()
    row = page.locator(f'article[data-job-id="{job_id}"]')
    expect(row).to_be_visible(timeout=10_000)
    assert float(row.locator("progress").get_attribute("value") or 0) >= 20

    for tab_row in (row, other_row):
        expect(tab_row.locator('[data-field="state"]')).to_have_text("SUCCESS", timeout=30_000)
        expect(tab_row.locator("progress")).to_have_attribute("value", "100")
        expect(tab_row.locator('[data-field="counts"]')).to_have_text("40 / 40")
        expect(tab_row.locator('[data-field="result"]')).to_contain_text("counted")
        expect(tab_row.locator('button[data-action="cancel"]')).to_be_hidden()
    context.close()


def test_a_job_without_a_total_shows_an_indeterminate_bar_with_its_count_and_rate(
    stack: Stack, browser: Browser
) -> None:
    context = browser.new_context()
    page = context.new_page()
    log_in(page, stack, "alice")
    row = launch_form(page, "tests.tally", steps=25, delay=0.2)
    bar = row.locator("progress")

    expect(row).to_have_attribute("data-state", "PROGRESS", timeout=15_000)
    # A count with nothing to divide it by, and how fast it grows; no percent, no time left.
    expect(row.locator('[data-field="counts"]')).to_have_text(re.compile(r"^[1-9]\d*$"))
    expect(row.locator('[data-field="rate"]')).to_have_text(re.compile(r"^\d+(\.\d)?/s$"))
    expect(row.locator('[data-field="message"]')).to_contain_text("so far")
    expect(row.locator('[data-field="percent"]')).to_have_text("")
    expect(row.locator('[data-field="eta"]')).to_have_text("")
    # No value: the browser draws a bar that moves without claiming how far it is.
    assert bar.get_attribute("value") is None
    assert bar.evaluate("bar => bar.matches(':indeterminate')")

    expect(row.locator('[data-field="state"]')).to_have_text("SUCCESS", timeout=30_000)
    expect(bar).to_have_attribute("value", "100")
    expect(row.locator('[data-field="counts"]')).to_have_text("25")
    context.close()


def test_bad_params_show_field_errors_and_cancel_works(stack: Stack, browser: Browser) -> None:
    context = browser.new_context()
    page = context.new_page()
    log_in(page, stack, "bob")
    form = page.locator('form[data-task="demo.count"]')
    form.locator('input[name="steps"]').fill("0")
    form.get_by_role("button", name="Launch").click()
    expect(form.locator('[data-errors-for="steps"]')).to_contain_text("greater than or equal to 1")

    row = launch_count(page, steps=1000, delay=0.1)
    expect(row).to_have_attribute("data-state", "PROGRESS", timeout=15_000)
    row.locator('button[data-action="cancel"]').click()
    expect(row.locator('[data-field="state"]')).to_have_text("REVOKED", timeout=15_000)
    context.close()


def proxied_page(browser: Browser) -> tuple[BrowserContext, Page, list[WebSocketRoute]]:
    """A page whose sockets pass through a proxy, through which a test can add frames."""
    context = browser.new_context()
    page = context.new_page()
    routes: list[WebSocketRoute] = []

    def proxy(route: WebSocketRoute) -> None:
        route.connect_to_server()  # Frames still flow both ways; we may add our own.
        routes.append(route)

    page.route_web_socket("**/ws/progress/", proxy)
    return context, page, routes


def job_frame(**fields: object) -> str:
    """A `job` frame of a made-up state, as the server would send it."""
    job = {
        "id": "6f1c7a4e-0000-4000-8000-000000000001", "task": "demo.count", "state": "SUCCESS",
        "current": 1, "total": 1, "percent": 100, "message": "", "seq": 1, "ts": time.time(),
        "eta": None, "rate": None, "result": None, "error": None,
        "created": "2026-11-21T10:00:00+00:00", "started": None, "finished": None, **fields,
    }  # fmt: skip
    return json.dumps({"type": "job", "job": job})


def test_job_data_is_text_never_markup(stack: Stack, browser: Browser) -> None:
    """A job state whose fields hold HTML shows it as text: no element is made from it."""
    context, page, routes = proxied_page(browser)
    log_in(page, stack, "alice")
    hostile = '<img src=x onerror="document.body.dataset.pwned=1"><script>alert(1)</script>'
    job_id = "6f1c7a4e-0000-4000-8000-000000000001"
    routes[-1].send(job_frame(id=job_id, task=hostile, message=hostile, result={"note": hostile}))
    row = page.locator(f'article[data-job-id="{job_id}"]')
    expect(row.locator('[data-field="message"]')).to_have_text(hostile)
    assert row.locator("img, script").count() == 0
    assert page.evaluate("() => document.body.dataset.pwned") is None
    context.close()


# No double quotes, so the result's JSON shows it unescaped.
HOSTILE = "<img src=x onerror=document.body.dataset.pwned=1><script>alert(document.cookie)</script>"


def test_a_real_jobs_message_and_result_render_as_text_on_both_pages(
    stack: Stack, browser: Browser
) -> None:
    """tests.echo reports the text it is given as its message and returns it as its result:
    the worker, Redis, the socket and both pages carry it, and it stays text."""
    context = browser.new_context()
    page = context.new_page()
    log_in(page, stack, "alice")
    form = page.locator('form[data-task="tests.echo"]')
    form.locator('[name="text"]').fill(HOSTILE)
    form.get_by_role("button", name="Launch").click()
    row = page.locator("article[data-job-id]").first
    expect(row.locator('[data-field="state"]')).to_have_text("SUCCESS", timeout=15_000)
    expect(row.locator('[data-field="message"]')).to_have_text(HOSTILE)
    expect(row.locator('[data-field="result"]')).to_contain_text(HOSTILE)
    job_id = row.get_attribute("data-job-id")
    # The job page renders the state on the server first (json_script), then live.
    page.goto(f"{stack.base_url}/jobs/{job_id}/")
    job_row = page.locator(f'article[data-job-id="{job_id}"]')
    expect(job_row.locator('[data-field="message"]')).to_have_text(HOSTILE)
    expect(page.locator("dl.params dd").last).to_have_text(HOSTILE)
    # Its log lines too, written by the task's logging calls.
    expect(page.locator("[data-job-log] .log-text").last).to_have_text(f"step 3 of 3: {HOSTILE}")
    assert page.locator("main img, main script:not([type])").count() == 0
    assert page.evaluate("() => document.body.dataset.pwned") is None
    context.close()


def test_a_state_older_than_the_one_shown_is_ignored(stack: Stack, browser: Browser) -> None:
    """A late or duplicated frame (lower or equal seq) never moves a bar back."""
    context, page, routes = proxied_page(browser)
    log_in(page, stack, "bob")
    row = launch_count(page, steps=3, delay=0.01)
    expect(row.locator('[data-field="state"]')).to_have_text("SUCCESS", timeout=15_000)
    final_seq = int(row.get_attribute("data-seq") or 0)
    job_id = row.get_attribute("data-job-id")
    for seq in (final_seq - 1, final_seq):
        stale = {"state": "PROGRESS", "current": 1, "total": 3, "percent": 33.33}
        routes[-1].send(job_frame(id=job_id, seq=seq, message="stale", **stale))
    # A frame after them proves they were read: it lands, they did not.
    marker = "6f1c7a4e-0000-4000-8000-000000000002"
    routes[-1].send(job_frame(id=marker, message="marker"))
    expect(page.locator(f'article[data-job-id="{marker}"]')).to_be_visible()
    expect(row.locator('[data-field="state"]')).to_have_text("SUCCESS")
    expect(row.locator("progress")).to_have_attribute("value", "100")
    assert "stale" not in (row.locator('[data-field="message"]').text_content() or "")
    context.close()


def test_logging_out_in_one_tab_signs_the_others_out(stack: Stack, browser: Browser) -> None:
    context = browser.new_context()
    watching = context.new_page()
    log_in(watching, stack, "bob")
    other = context.new_page()
    other.goto(f"{stack.base_url}/")
    other.get_by_role("button", name="Log out").click()
    status = watching.locator("[data-connection]")
    expect(status).to_have_attribute("data-status", "signed-out", timeout=5_000)
    expect(status).to_contain_text("signed out")
    context.close()


def test_the_job_page_streams_the_log_and_a_reload_replays_it_without_repeats(
    stack: Stack, browser: Browser
) -> None:
    context = browser.new_context()
    page = context.new_page()
    log_in(page, stack, "alice")
    row = launch_form(page, "tests.echo", text="working", steps=40, delay=0.1)
    expect(row).to_have_attribute("data-state", "PROGRESS", timeout=15_000)
    page.goto(f"{stack.base_url}/jobs/{row.get_attribute('data-job-id')}/")
    lines = page.locator("[data-job-log] li")
    # Lines written before the page opened are replayed; new ones stream in while it runs.
    expect(lines.first).to_contain_text("step 1 of 40: working", timeout=10_000)
    expect(page.locator("[data-log-empty]")).to_be_hidden()
    expect(page.locator("article[data-job-id]")).to_have_attribute("data-state", "PROGRESS")
    if SCREENSHOTS:
        # A console with a dozen lines, for docs/ui.md.
        expect(lines.nth(11)).to_be_attached(timeout=10_000)
    shoot(page, "job-log.png")
    expect(page.locator("article[data-job-id]")).to_have_attribute(
        "data-state", "SUCCESS", timeout=20_000
    )
    expect(lines.last).to_contain_text("step 40 of 40: working", timeout=5_000)
    expect(lines).to_have_count(40)
    page.reload()
    expect(lines.last).to_contain_text("step 40 of 40: working", timeout=10_000)
    numbers = [int(n) for n in lines.evaluate_all("(items) => items.map((i) => i.dataset.n)")]
    assert numbers == list(range(1, 41)), "lines repeated or out of order after the reload"
    context.close()
