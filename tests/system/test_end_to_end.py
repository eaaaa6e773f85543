"""The whole loop on real processes: Redis, a Celery worker, uvicorn and WebSocket clients."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from progress.protocol.states import WORKER_LOST_ERROR
from tests.helpers.stack import FINAL, JobSocket, Stack, csrf, launch
from tests.support import wait_for

STATE_ORDER = ["PENDING", "STARTED", "PROGRESS", "SUCCESS"]


def running_job(stack: Stack, client: httpx.Client, steps: int) -> tuple[JobSocket, dict[str, Any]]:
    """A socket of the client's and a demo.count job of theirs that has reached PROGRESS."""
    socket = stack.socket(client)
    socket.recv()
    job = launch(client, steps=steps, delay=0.05)
    wait_for(lambda: socket.recv()["job"]["state"] == "PROGRESS", 20)
    return socket, job


def assert_in_order(states: list[dict[str, Any]]) -> None:
    seqs = [state["seq"] for state in states]
    assert seqs == sorted(set(seqs)), f"seq not strictly increasing: {seqs}"
    ranks = [STATE_ORDER.index(state["state"]) for state in states]
    assert ranks == sorted(ranks), [state["state"] for state in states]


def test_a_job_moves_live_to_success_in_every_tab(stack: Stack, alice: httpx.Client) -> None:
    first, second = stack.socket(alice), stack.socket(alice)
    assert first.recv()["type"] == "snapshot"
    assert second.recv()["type"] == "snapshot"

    job = launch(alice, steps=20, delay=0.05)

    seen_first = first.until_final(job["id"])
    seen_second = second.until_final(job["id"])
    assert_in_order(seen_first)
    final = seen_first[-1]
    assert final["state"] == "SUCCESS"
    assert final["current"] == final["total"] == 20
    assert final["percent"] == 100
    assert final["result"] == {"counted": 20}
    assert final["finished"] is not None
    assert any(state["state"] == "PROGRESS" for state in seen_first)
    # The second tab moves in step: it ends on the very same state.
    assert seen_second[-1] == final
    first.close()
    second.close()


def test_other_users_see_nothing_of_a_job(
    stack: Stack, alice: httpx.Client, bob: httpx.Client
) -> None:
    bobs_socket = stack.socket(bob)
    assert bobs_socket.recv()["type"] == "snapshot"
    alices_socket = stack.socket(alice)
    alices_socket.recv()

    job = launch(alice, steps=5, delay=0.02)
    alices_socket.until_final(job["id"])

    bobs_socket.send({"action": "subscribe", "job": job["id"]})
    reply = bobs_socket.recv()
    assert reply["type"] == "error" and reply["error"] == "not_found"
    bobs_socket.send({"action": "cancel", "job": job["id"]})
    assert bobs_socket.recv()["error"] == "not_found"
    assert bob.get(f"/api/jobs/{job['id']}/").status_code == 404
    assert bob.post(f"/api/jobs/{job['id']}/cancel/", headers=csrf(bob)).status_code == 404
    assert bob.get(f"/api/jobs/{job['id']}/events/").status_code == 404
    assert job["id"] not in {j["id"] for j in bob.get("/api/jobs/").json()["jobs"]}
    # Nothing of Alice's job reached Bob's socket: its next frame is a ping's error reply,
    # not one of her states, and his snapshots never list her job.
    bobs_socket.send({"action": "subscribe", "job": "ping"})
    assert bobs_socket.recv()["error"] == "not_found"
    bobs_socket.close()
    again = stack.socket(bob)
    assert job["id"] not in {j["id"] for j in again.recv()["jobs"]}
    again.close()
    alices_socket.close()


def test_staff_may_watch_any_job(stack: Stack, alice: httpx.Client, staff: httpx.Client) -> None:
    job = launch(alice, steps=30, delay=0.05)
    watcher = stack.socket(staff)
    assert watcher.recv()["type"] == "snapshot"
    watcher.send({"action": "subscribe", "job": job["id"]})
    states = watcher.until_final(job["id"])
    assert states[-1]["state"] == "SUCCESS"
    assert staff.get(f"/api/jobs/{job['id']}/").json()["state"] == "SUCCESS"
    watcher.close()


def test_handshakes_without_a_session_or_from_a_foreign_origin_are_refused(
    stack: Stack, alice: httpx.Client
) -> None:
    for client, origin in [(None, ""), (alice, "http://evil.example"), (alice, None)]:
        with pytest.raises(InvalidStatus) as refused:
            stack.socket(client, origin=origin)
        assert refused.value.response.status_code == 403


def test_a_socket_opened_after_the_end_finds_the_final_state(
    stack: Stack, alice: httpx.Client
) -> None:
    job = launch(alice, steps=3, delay=0.01)
    wait_for(lambda: alice.get(f"/api/jobs/{job['id']}/").json()["state"] == "SUCCESS", 20)
    late = stack.socket(alice)
    snapshot = late.recv()
    assert snapshot["type"] == "snapshot"
    mine = [j for j in snapshot["jobs"] if j["id"] == job["id"]]
    assert mine and mine[0]["state"] == "SUCCESS" and mine[0]["current"] == 3
    late.close()


def test_cancel_ends_a_running_job_revoked(stack: Stack, alice: httpx.Client) -> None:
    socket, job = running_job(stack, alice, steps=500)

    response = alice.post(f"/api/jobs/{job['id']}/cancel/", headers=csrf(alice))
    assert response.status_code == 202

    final = socket.until_final(job["id"])[-1]
    assert final["state"] == "REVOKED"
    assert final["current"] < 500
    # The worker stopped: the stored state stays REVOKED.
    time.sleep(0.5)
    assert alice.get(f"/api/jobs/{job['id']}/").json()["state"] == "REVOKED"
    socket.close()


def test_cancel_over_the_socket(stack: Stack, alice: httpx.Client) -> None:
    socket = stack.socket(alice)
    socket.recv()
    job = launch(alice, steps=500, delay=0.05)
    socket.send({"action": "cancel", "job": job["id"]})
    assert socket.until_final(job["id"])[-1]["state"] == "REVOKED"
    socket.close()


def test_a_failing_job_ends_failure_with_a_message_and_no_traceback(
    stack: Stack, alice: httpx.Client
) -> None:
    socket = stack.socket(alice)
    socket.recv()
    job = launch(alice, steps=10, delay=0.01, fail_at=3)
    final = socket.until_final(job["id"])[-1]
    assert final["state"] == "FAILURE"
    assert "Failed at step 3" in final["error"]
    assert "Traceback" not in json.dumps(final)
    assert alice.get(f"/api/jobs/{job['id']}/").json()["error"] == final["error"]
    socket.close()


def test_the_event_stream_sends_the_current_state_then_each_new_one(
    stack: Stack, alice: httpx.Client
) -> None:
    job = launch(alice, steps=10, delay=0.05)
    events = []
    with alice.stream("GET", f"/api/jobs/{job['id']}/events/", timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[len("data: ") :]))
    # The stream ended on its own after the final state.
    assert all(event["type"] == "job" for event in events)
    assert events[-1]["job"]["state"] == "SUCCESS"
    assert_in_order([event["job"] for event in events])


def test_the_csv_report_downloads_for_its_owner_only(
    stack: Stack, alice: httpx.Client, bob: httpx.Client
) -> None:
    socket = stack.socket(alice)
    socket.recv()
    job = launch(alice, "reports.sales_csv", rows=200, seconds=0.5)
    final = socket.until_final(job["id"])[-1]
    assert final["state"] == "SUCCESS", final
    url = final["result"]["download"]
    response = alice.get(url)
    assert response.status_code == 200
    lines = response.text.strip().splitlines()
    assert lines[0] == "order,region,product,quantity,amount"
    assert len(lines) == 201
    assert bob.get(url).status_code == 404
    socket.close()


def test_the_api_lists_tasks_and_rejects_bad_launches(stack: Stack, alice: httpx.Client) -> None:
    names = {task["name"] for task in alice.get("/api/tasks/").json()["tasks"]}
    assert {"demo.count", "reports.sales_csv"} <= names
    bad = alice.post(
        "/api/jobs/", json={"task": "demo.count", "params": {"steps": 0}}, headers=csrf(alice)
    )
    assert bad.status_code == 400 and "steps" in bad.json()["fields"]
    unknown = alice.post("/api/jobs/", json={"task": "os.system"}, headers=csrf(alice))
    assert unknown.status_code == 400 and "task" in unknown.json()["fields"]
    no_csrf = alice.post("/api/jobs/", json={"task": "demo.count"})
    assert no_csrf.status_code == 403
    assert httpx.get(f"{stack.base_url}/api/jobs/").status_code == 401
    stack.check_alive()


def test_jobs_are_listed_newest_first(stack: Stack, alice: httpx.Client) -> None:
    first = launch(alice, steps=1, delay=0)
    second = launch(alice, steps=1, delay=0)
    ids = [job["id"] for job in alice.get("/api/jobs/").json()["jobs"]]
    assert ids.index(second["id"]) < ids.index(first["id"])
    assert all(job["state"] in FINAL | {"PENDING", "STARTED", "PROGRESS"} for job in [first])


def test_an_idle_socket_stays_open_and_still_receives(stack: Stack, alice: httpx.Client) -> None:
    """channels-redis waits for messages in 5 s reads; an idle socket must outlive many of them."""
    socket = stack.socket(alice)
    assert socket.recv()["type"] == "snapshot"
    with pytest.raises(TimeoutError):
        socket.recv(timeout=7)  # Seven idle seconds: longer than redis-py's default timeout.
    job = launch(alice, steps=2, delay=0.01)
    assert socket.until_final(job["id"])[-1]["state"] == "SUCCESS"
    socket.close()


def test_a_job_whose_worker_child_is_killed_ends_failure(stack: Stack, alice: httpx.Client) -> None:
    socket, job = running_job(stack, alice, steps=400)
    worker = stack.services[0].process.pid
    children = Path(f"/proc/{worker}/task/{worker}/children").read_text().split()
    for child in children:  # Celery replaces its pool children; only the job is lost.
        os.kill(int(child), signal.SIGKILL)
    final = socket.until_final(job["id"])[-1]
    assert final["state"] == "FAILURE"
    # Users read what happened, not Celery's exception class.
    assert final["error"] == WORKER_LOST_ERROR
    socket.close()


def test_params_reach_the_task_only_as_validated(stack: Stack, alice: httpx.Client) -> None:
    """Strings, as a form sends them, arrive in the task as the form cleaned them."""
    socket = stack.socket(alice)
    socket.recv()
    job = launch(alice, steps="7", delay="0")
    final = socket.until_final(job["id"])[-1]
    socket.close()
    assert final["state"] == "SUCCESS" and final["result"] == {"counted": 7}


def test_only_registered_tasks_can_be_launched(stack: Stack, alice: httpx.Client) -> None:
    """A Celery task the worker knows, but that no one registered for users, is refused."""
    for name in ["celery.backend_cleanup", "celery.chord_unlock", "progress.anything"]:
        response = alice.post("/api/jobs/", json={"task": name}, headers=csrf(alice))
        assert response.status_code == 400 and response.json()["fields"] == {
            "task": ["Not a task you can launch."]
        }, name
    listed = {task["name"] for task in alice.get("/api/tasks/").json()["tasks"]}
    assert not any(name.startswith("celery.") for name in listed)
