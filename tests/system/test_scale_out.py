"""Two web nodes and two worker nodes on one Redis and one database, as separate processes:
a user's tabs on either node see every job, whichever worker runs it, and a job launched
through one node is cancelled through the other."""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest

from tests.helpers.stack import FINAL, Stack, csrf, launch
from tests.support import wait_for

pytestmark = pytest.mark.scale


# Both of channels-redis' layers: the core one (the default) and the pub/sub one, whose
# group_add works only for channels of the same process (the hub's, here, on each node).
@pytest.fixture(scope="module", params=["redis", "pubsub"])
def nodes(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Stack, Stack]]:
    """Node A and node B: each a web server and a worker (one child, so jobs spread)."""
    layer = str(request.param)
    db = {"redis": 8, "pubsub": 10}[layer]
    redis_url = os.environ["REDIS_URL"].rsplit("/", 1)[0] + f"/{db}"
    first = Stack(tmp_path_factory.mktemp("node-a"), redis_url, CHANNEL_LAYER=layer)
    shared = {name: first.env[name] for name in ("DATABASE_URL", "MEDIA_ROOT", "STATIC_ROOT")}
    second = Stack(tmp_path_factory.mktemp("node-b"), redis_url, CHANNEL_LAYER=layer, **shared)
    try:
        first.prepare()
        for node in (first, second):
            node.start_worker(concurrency=1)
            node.start_web()
        yield first, second
    finally:
        for node in (first, second):
            node.stop()


def worker_output(node: Stack) -> str:
    """What the node's worker (which the fixture starts) has logged so far."""
    assert node.worker is not None
    return node.worker.output()


def test_tabs_on_either_node_see_every_job_whichever_worker_runs_it(
    nodes: tuple[Stack, Stack],
) -> None:
    first, second = nodes
    clients = [first.login("alice"), second.login("alice")]
    tabs = [node.socket(client) for node, client in zip(nodes, clients, strict=True)]
    for tab in tabs:
        assert tab.recv()["type"] == "snapshot"
    # Launched through both nodes, in turns.
    jobs = [launch(clients[i % 2], steps=10, delay=0.05) for i in range(6)]
    for tab in tabs:
        finals: dict[str, str] = {}
        while len(finals) < len(jobs):
            frame = tab.recv(timeout=60)
            if frame["type"] == "job" and frame["job"]["state"] in FINAL:
                finals[frame["job"]["id"]] = frame["job"]["state"]
        assert finals == {job["id"]: "SUCCESS" for job in jobs}

    def ran_on_each_worker() -> list[int]:
        # Celery logs "succeeded" just after the final state goes out. Empty (falsy, so
        # wait_for polls on) until every job has.
        ran = [
            sum(f"[{job['id']}] succeeded" in worker_output(node) for job in jobs) for node in nodes
        ]
        return ran if sum(ran) == len(jobs) else []

    # Both workers ran some: the queue spreads over the nodes.
    ran = wait_for(ran_on_each_worker, timeout=10)
    assert all(ran), ran
    for tab in tabs:
        tab.close()
    for client in clients:
        client.close()


def test_a_job_launched_through_one_node_is_cancelled_through_the_other(
    nodes: tuple[Stack, Stack],
) -> None:
    first, second = nodes
    through_a, through_b = first.login("bob"), second.login("bob")
    tabs = [first.socket(through_a), second.socket(through_b)]
    for tab in tabs:
        tab.recv()
    job = launch(through_a, steps=500, delay=0.05)
    for tab in tabs:
        tab.until_state(job["id"], "PROGRESS")
    answer = through_b.post(f"/api/jobs/{job['id']}/cancel/", headers=csrf(through_b))
    assert answer.status_code == 202
    for tab in tabs:
        assert tab.until_final(job["id"])[-1]["state"] == "REVOKED"

    def stopped() -> bool:
        # The worker that ran it, on either node, stopped it: it never reports again.
        return any(
            f"Terminating {job['id']}" in worker_output(node)
            or f"Discarding revoked task: demo.count[{job['id']}]" in worker_output(node)
            for node in nodes
        )

    wait_for(stopped, timeout=15)
    seen = through_a.get(f"/api/jobs/{job['id']}/").json()
    assert seen["state"] == "REVOKED" and seen["current"] < 500
    for tab in tabs:
        tab.close()
    through_a.close()
    through_b.close()


def test_either_node_answers_for_the_others_jobs(nodes: tuple[Stack, Stack]) -> None:
    first, second = nodes
    on_a, on_b = first.login("alice"), second.login("alice")
    job = launch(on_a, steps=2, delay=0)
    wait_for(lambda: on_b.get(f"/api/jobs/{job['id']}/").json()["state"] == "SUCCESS", 30)
    listed = [j["id"] for j in on_b.get("/api/jobs/").json()["jobs"]]
    assert job["id"] in listed
    # Another user reaches it through neither node.
    stranger: httpx.Client = second.login("bob")
    assert stranger.get(f"/api/jobs/{job['id']}/").status_code == 404
    for client in (on_a, on_b, stranger):
        client.close()
