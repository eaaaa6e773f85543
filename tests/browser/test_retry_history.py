"""Retry and history in Chromium on the real stack: a failed job retried from the dashboard and
from its page, the history filtered by state, a result opened as JSON, and axe on the history."""

from __future__ import annotations

import json
import re
from typing import TypedDict

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests.helpers.browser import Scheme, launch_count, log_in, serious_violations
from tests.helpers.stack import Stack

pytestmark = pytest.mark.browser


class Failing(TypedDict):
    steps: int
    delay: float
    fail_at: int


FAILING: Failing = {"steps": 3, "delay": 0.05, "fail_at": 2}


def by_id(page: Page, job_id: str | None) -> Locator:
    """A row that stays the same job's, unlike `.first` as new rows arrive above it."""
    assert job_id
    return page.locator(f'article[data-job-id="{job_id}"]')


def launched(page: Page, steps: int, delay: float) -> Locator:
    """Launches demo.count from the dashboard; returns the new job's row once it is drawn."""
    rows = page.locator("article[data-job-id]")
    before = rows.count()
    launch_count(page, steps=steps, delay=delay)
    expect(rows).to_have_count(before + 1, timeout=10_000)
    return by_id(page, rows.first.get_attribute("data-job-id"))


def launch_failing(page: Page) -> Locator:
    """Launches demo.count set to fail at its second step; returns its row, found by its job
    id, once it failed."""
    fail_at = page.locator('form[data-task="demo.count"] input[name="fail_at"]')
    fail_at.fill(str(FAILING["fail_at"]))
    row = launched(page, steps=FAILING["steps"], delay=FAILING["delay"])
    expect(row).to_have_attribute("data-state", "FAILURE", timeout=15_000)
    # So that the next launch from the form runs to the end.
    fail_at.fill("")
    return row


def params_on_page(page: Page) -> dict[str, str]:
    names = page.locator(".params dt").all_inner_texts()
    return dict(zip(names, page.locator(".params dd").all_inner_texts(), strict=True))


def test_retry_from_the_dashboard_and_the_job_page_then_find_both_in_the_history(
    stack: Stack, browser: Browser
) -> None:
    stack.create_users({"retry1": False})
    context = browser.new_context()
    page = context.new_page()
    log_in(page, stack, "retry1")

    old = launch_failing(page)
    old_id = old.get_attribute("data-job-id")
    assert old_id
    expect(old.locator('[data-field="error"]')).to_have_text("Failed at step 2 of 3, as asked.")
    expect(old.locator('[data-field="retry-of"]')).to_be_hidden()

    # Retry from the keyboard: the new job shows at the top, fails the same way, and says
    # which job it retried.
    old.get_by_role("button", name="Retry").focus()
    page.keyboard.press("Enter")
    rows = page.locator("article[data-job-id]")
    expect(rows).to_have_count(2, timeout=10_000)
    new_id = rows.first.get_attribute("data-job-id")
    assert new_id != old_id
    new = by_id(page, new_id)
    expect(new).to_have_attribute("data-state", "FAILURE", timeout=15_000)
    expect(new.locator('[data-field="error"]')).to_have_text("Failed at step 2 of 3, as asked.")
    retry_of = new.locator('[data-field="retry-of"] a')
    expect(retry_of).to_have_attribute("href", f"/jobs/{old_id}/")
    expect(retry_of).to_have_text(f"job {old_id[:8]}")

    # A job that succeeded offers no retry; the old one still does.
    expect(old.get_by_role("button", name="Retry")).to_be_visible()
    done = launched(page, steps=2, delay=0.01)
    done_id = done.get_attribute("data-job-id")
    expect(done).to_have_attribute("data-state", "SUCCESS", timeout=15_000)
    expect(done.get_by_role("button", name="Retry")).to_be_hidden()

    # The retry's page links to the old job and ran it with the same params.
    retry_of.click()
    expect(page).to_have_url(f"{stack.base_url}/jobs/{old_id}/")
    page.goto(f"{stack.base_url}/jobs/{new_id}/")
    expect(page.locator("[data-retry-of] a")).to_have_attribute("href", f"/jobs/{old_id}/")
    assert params_on_page(page) == {name: str(value) for name, value in FAILING.items()}

    # Retry from the job page: the browser goes to the new job's page.
    button = page.get_by_role("button", name="Retry")
    expect(button).to_be_visible(timeout=10_000)
    button.click()
    expect(page).not_to_have_url(f"{stack.base_url}/jobs/{new_id}/", timeout=10_000)
    third_id = page.url.rstrip("/").rsplit("/", 1)[1]
    expect(page.locator("[data-retry-of] a")).to_have_attribute("href", f"/jobs/{new_id}/")
    expect(page.locator("article[data-job-id]")).to_have_attribute(
        "data-state", "FAILURE", timeout=15_000
    )

    # The history, from the site's nav, filtered to the failures: all three, newest first.
    page.get_by_role("navigation", name="Site").get_by_role("link", name="History").click()
    expect(page.get_by_role("heading", name="History")).to_be_visible()
    page.get_by_label("State").select_option("FAILURE")
    page.get_by_role("button", name="Filter", exact=True).click()
    expect(page).to_have_url(re.compile(r"/history/\?state=FAILURE"))
    history_rows = page.locator("tr[data-job-id]")
    expect(history_rows).to_have_count(3)
    assert [r.get_attribute("data-job-id") for r in history_rows.all()] == [
        third_id,
        new_id,
        old_id,
    ]
    expect(history_rows.first).to_contain_text("Failed at step 2 of 3, as asked.")

    # Without the filter, the successful job's result opens as JSON.
    page.get_by_role("link", name="Clear filters").click()
    expect(history_rows).to_have_count(4)
    page.locator(f'tr[data-job-id="{done_id}"]').get_by_role("link", name="JSON").click()
    expect(page).to_have_url(f"{stack.base_url}/jobs/{done_id}/result.json")
    expect(page.locator("body")).to_contain_text('"counted": 2')
    response = context.request.get(f"{stack.base_url}/jobs/{done_id}/result.json")
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert json.loads(response.text()) == {"counted": 2}
    context.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_history_has_no_serious_accessibility_violation(
    stack: Stack, browser: Browser, scheme: Scheme
) -> None:
    stack.create_users({f"retry-axe-{scheme}": False})
    context = browser.new_context(color_scheme=scheme)
    page = context.new_page()
    log_in(page, stack, f"retry-axe-{scheme}")
    done = launched(page, steps=2, delay=0.01)
    expect(done).to_have_attribute("data-state", "SUCCESS", timeout=15_000)
    launch_failing(page)
    page.goto(f"{stack.base_url}/history/")
    expect(page.locator("tr[data-job-id]")).to_have_count(2)
    found = {"history": serious_violations(page)}
    page.goto(f"{stack.base_url}/history/?state=REVOKED")
    expect(page.locator("[data-empty]")).to_be_visible()
    found["empty history"] = serious_violations(page)
    assert found == {"history": [], "empty history": []}
    context.close()
