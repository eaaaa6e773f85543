"""Group jobs through the real worker: a Celery group of demo.count parts and its chord
callback, over the socket and on the job page in Chromium."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.helpers.stack import Stack, csrf, launch
from tests.support import wait_for

if TYPE_CHECKING:
    from playwright.sync_api import Browser


def parts_of(client: httpx.Client, group_id: str) -> list[dict[str, object]]:
    jobs = client.get("/api/jobs/").json()["jobs"]
    return [job for job in jobs if job.get("parent") == group_id]


def test_a_group_ends_with_its_chord_callback_after_every_part(
    stack: Stack, alice: httpx.Client
) -> None:
    socket = stack.socket(alice)
    socket.recv()  # The snapshot.
    group = launch(alice, "demo.batch", sizes="4, 6", delay=0.05)
    states = socket.until_final(group["id"], timeout=60)
    final = states[-1]
    assert final["state"] == "SUCCESS", final
    # The callback's result, run as the group job itself.
    assert final["result"] == {"counted": 10, "parts": 2}
    assert final["message"] == "2 of 2 parts done"
    assert (final["current"], final["total"], final["percent"]) == (10, 10, 100.0)
    percents = [s["percent"] for s in states if s["state"] == "PROGRESS"]
    assert percents and percents == sorted(percents), percents
    assert [s["seq"] for s in states] == sorted({s["seq"] for s in states})
    parts = parts_of(alice, group["id"])
    assert sorted((p["state"], p["total"]) for p in parts) == [("SUCCESS", 4), ("SUCCESS", 6)]
    socket.close()


def test_a_failed_part_fails_the_group_weighted_by_units(stack: Stack, alice: httpx.Client) -> None:
    socket = stack.socket(alice)
    socket.recv()
    group = launch(alice, "demo.batch", sizes="10, 30", delay=0.02, fail_part=1)
    final = socket.until_final(group["id"], timeout=60)[-1]
    assert final["state"] == "FAILURE"
    assert final["error"].startswith("1 of 2 parts failed. The first said: Failed at step 5")
    # 4 steps done before the fifth raised, beside 30 of 30: 34 of 40 units, 85%, where a
    # mean of the parts' percents (celery-progress's way) would say 70%.
    assert (final["current"], final["total"], final["percent"]) == (34, 40, 85.0)
    socket.close()


def test_cancelling_a_group_stops_its_parts(stack: Stack, alice: httpx.Client) -> None:
    socket = stack.socket(alice)
    socket.recv()
    group = launch(alice, "demo.batch", sizes="200, 200", delay=0.05)
    socket.until_state(group["id"], "PROGRESS")
    answer = alice.post(f"/api/jobs/{group['id']}/cancel/", headers=csrf(alice))
    assert answer.status_code == 202
    assert socket.until_final(group["id"])[-1]["state"] == "REVOKED"

    def all_revoked() -> bool:
        return {p["state"] for p in parts_of(alice, group["id"])} == {"REVOKED"}

    wait_for(all_revoked, timeout=15)
    socket.close()


@pytest.mark.browser
def test_the_job_page_shows_the_whole_and_a_bar_per_part(stack: Stack, browser: Browser) -> None:
    from playwright.sync_api import expect

    from tests.helpers.browser import launch_form, log_in, shoot

    stack.create_users({"groups1": False})
    context = browser.new_context(viewport={"width": 1100, "height": 1000})
    page = context.new_page()
    log_in(page, stack, "groups1")
    row = launch_form(page, "demo.batch", sizes="30, 60, 90", delay=0.1)
    expect(row.locator("a").first).to_have_text("Count in parallel")
    group_id = row.get_attribute("data-job-id")
    # The dashboard lists the group once; its parts are on its page.
    expect(page.locator("article[data-job-id]")).to_have_count(1)

    page.goto(f"{stack.base_url}/jobs/{group_id}/")
    parts = page.locator("[data-job-parts] article[data-job-id]")
    expect(parts).to_have_count(3)
    whole = page.locator("[data-job-list] progress")
    expect(page.locator("[data-job-list] article")).to_have_attribute(
        "data-state", "PROGRESS", timeout=15_000
    )
    expect(parts.nth(0)).to_have_attribute("data-state", "PROGRESS", timeout=15_000)
    expect(whole).to_have_attribute("value", re.compile(r"^[1-9]"), timeout=15_000)
    # Mid-way, for docs/ui.md: the first part half done, the others behind it.
    half = re.compile(r"^(1[5-9]|2[0-9]) / 30$")
    expect(parts.nth(0).locator('[data-field="counts"]')).to_have_text(half, timeout=30_000)
    shoot(page, "group.png")
    expect(parts.nth(0).locator('[data-field="counts"]')).to_have_text("30 / 30", timeout=30_000)
    # Parts keep their order, each with a labelled bar of its own.
    for index, steps in enumerate([30, 60, 90]):
        expect(parts.nth(index).locator('[data-field="counts"]')).to_contain_text(f"/ {steps}")
    context.close()


@pytest.mark.browser
def test_the_group_bar_weighs_parts_by_their_units(stack: Stack, browser: Browser) -> None:
    from playwright.sync_api import expect

    from tests.helpers.browser import log_in

    stack.create_users({"groups2": False})
    context = browser.new_context()
    page = context.new_page()
    log_in(page, stack, "groups2")
    client = stack.login("groups2")
    group = launch(client, "demo.batch", sizes="10, 30", delay=0.02, fail_part=1)
    page.goto(f"{stack.base_url}/jobs/{group['id']}/")
    whole = page.locator("[data-job-list] article")
    expect(whole).to_have_attribute("data-state", "FAILURE", timeout=30_000)
    # 4 of 10 beside 30 of 30 is 34 of 40 units: 85%, not the parts' mean of 70%.
    expect(whole.locator('[data-field="percent"]')).to_have_text("85%")
    expect(whole.locator("progress")).to_have_attribute("value", "85")
    parts = page.locator("[data-job-parts] article")
    expect(parts.nth(0)).to_have_attribute("data-state", "FAILURE")
    expect(parts.nth(1)).to_have_attribute("data-state", "SUCCESS")
    expect(parts.nth(0).locator('[data-field="counts"]')).to_have_text("4 / 10")
    expect(parts.nth(1).locator('[data-field="counts"]')).to_have_text("30 / 30")
    client.close()
    context.close()
