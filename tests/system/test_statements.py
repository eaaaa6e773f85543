"""The statements app on the real stack: launched from its page, reported in steps, reacted to
by a job_finished receiver in the worker, waited on by an async view, told by its own socket."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import connect

from tests.helpers.stack import Stack, csrf
from tests.support import wait_for


def request_statement(client: httpx.Client, month: str, rows: int = 60, seconds: float = 1) -> None:
    """Posts the statements page's form as a browser would."""
    page = client.get("/statements/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token
    response = client.post(
        "/statements/",
        data={"month": month, "rows": rows, "seconds": seconds,
              "csrfmiddlewaretoken": token.group(1)},
        headers={"Referer": f"{client.base_url}/statements/"},
    )  # fmt: skip
    assert response.status_code == 302, response.text[:500]


def statement_job(client: httpx.Client, month: str) -> str:
    found = re.search(r'data-statement="' + month + r'" data-statement-job="([0-9a-f-]+)"',
                      client.get("/statements/").text)  # fmt: skip
    assert found
    return found.group(1)


def test_a_statement_is_built_in_steps_and_its_owner_is_told(
    stack: Stack, alice: httpx.Client, bob: httpx.Client
) -> None:
    socket = stack.socket(alice)
    socket.recv()
    request_statement(alice, "2026-10")
    job_id = statement_job(alice, "2026-10")

    states = socket.until_final(job_id, timeout=30)
    socket.close()
    messages = [s["message"] for s in states if s["state"] == "PROGRESS"]
    assert any(re.fullmatch(r"Step 1 of 2: Fetching transactions — transactions \(\d+ / 60\)", m)
               for m in messages)  # fmt: skip
    assert any(re.fullmatch(r"Step 2 of 2: Writing the statement — lines \(\d+ / 60\)", m)
               for m in messages)  # fmt: skip
    percents = [s["percent"] for s in states if s["percent"] is not None]
    assert percents == sorted(percents), "the bar went backwards between steps"
    final = states[-1]
    assert final["state"] == "SUCCESS" and final["current"] == final["total"] == 100
    assert final["result"]["month"] == "2026-10"

    # The receiver ran in the worker: a notification on the page, and a mail.
    def noticed() -> str:
        # Empty (falsy, so wait_for polls on) until the notification shows.
        page = alice.get("/statements/").text
        return page if "is ready" in page else ""

    assert "Your statement for 2026-10 is ready." in wait_for(noticed)
    assert "2026-10" not in bob.get("/statements/").text
    mails = wait_for(lambda: list(Path(stack.env["EMAIL_FILE_PATH"]).glob("*.log")))
    mail = "".join(path.read_text() for path in mails)
    assert "To: alice@example.com" in mail and "Your statement for 2026-10 is ready." in mail

    # The file is its owner's only.
    download = final["result"]["download"]
    assert alice.get(download).text.startswith("line,amount")
    assert bob.get(download).status_code == 404


def test_an_async_view_waits_on_progress_subscribe(
    stack: Stack, alice: httpx.Client, bob: httpx.Client
) -> None:
    request_statement(alice, "2026-09", rows=40, seconds=1)
    pk = re.findall(r'data-statement-pk="(\d+)"', alice.get("/statements/").text)[0]
    answer = alice.get(f"/statements/{pk}/wait/", timeout=30)
    assert answer.status_code == 200
    body: dict[str, Any] = answer.json()
    assert body["state"] == "SUCCESS" and body["result"]["month"] == "2026-09"
    assert bob.get(f"/statements/{pk}/wait/").status_code == 404


def test_the_apps_own_socket_says_when_a_statement_is_ready(
    stack: Stack, alice: httpx.Client
) -> None:
    headers = {
        "Cookie": "; ".join(f"{k}={v}" for k, v in alice.cookies.items()),
        "Origin": stack.origin,
    }
    url = stack.ws_url.replace("/ws/progress/", "/ws/statements/")
    with connect(url, additional_headers=headers, open_timeout=10) as notices:
        request_statement(alice, "2026-08", rows=20, seconds=0.5)
        job_id = statement_job(alice, "2026-08")
        frame = json.loads(notices.recv(timeout=30))
        assert frame == {"type": "ready", "job": job_id, "state": "SUCCESS"}


def test_the_statement_task_is_not_offered_over_http(stack: Stack, alice: httpx.Client) -> None:
    names = [task["name"] for task in alice.get("/api/tasks/").json()["tasks"]]
    assert "statements.build" not in names and "demo.count" in names
    response = alice.post(
        "/api/jobs/",
        json={"task": "statements.build", "params": {"month": "2026-01"}},
        headers=csrf(alice),
    )
    assert response.status_code == 400 and "Unknown task" in response.json()["error"]


def test_a_bad_form_is_answered_with_its_errors_and_launches_nothing(
    stack: Stack, alice: httpx.Client
) -> None:
    page = alice.get("/statements/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token
    before = alice.get("/api/jobs/").json()["jobs"]
    response = alice.post(
        "/statements/",
        data={"month": "2026-13", "rows": "-1", "csrfmiddlewaretoken": token.group(1)},
        headers={"Referer": f"{alice.base_url}/statements/"},
    )
    assert response.status_code == 200 and "field-errors" in response.text
    assert alice.get("/api/jobs/").json()["jobs"] == before
    # And without its CSRF token, a POST is refused.
    assert alice.post("/statements/", data={"month": "2026-01"}).status_code == 403
