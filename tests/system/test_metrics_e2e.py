"""GET /metrics/ and JSON logs on real processes: a socket, a demo.count job, then a scrape."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.stack import Stack, launch
from tests.support import RedisServer, wait_for

TOKEN = "e2e-metrics-token-93ad"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack of its own: the session's web process runs without a metrics token."""
    redis = RedisServer(tmp_path_factory.mktemp("metrics-redis"))
    redis.start()
    stack = Stack(
        tmp_path_factory.mktemp("metrics-stack"),
        redis.url,
        PROGRESS_METRICS_TOKEN=TOKEN,
        LOG_FORMAT="json",
    )
    try:
        with stack.running() as running:
            yield running
    finally:
        redis.stop()


def scrape(stack: Stack) -> dict[str, float]:
    """The scraped samples without labels, and progress_jobs by `state:<state>`."""
    response = httpx.get(f"{stack.base_url}/metrics/", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == "progress_jobs":
                samples[f"state:{sample.labels['state']}"] = sample.value
            elif not sample.labels:
                samples[sample.name] = sample.value
    return samples


def test_a_live_job_shows_in_the_web_process_metrics(stack: Stack) -> None:
    assert httpx.get(f"{stack.base_url}/metrics/").status_code == 401
    client = stack.login("alice")
    socket = stack.socket(client)
    assert socket.recv()["type"] == "snapshot"
    job = launch(client, steps=5, delay=0.02)
    assert socket.until_final(job["id"])[-1]["state"] == "SUCCESS"

    samples = scrape(stack)
    assert samples["progress_open_sockets"] >= 1
    assert samples["progress_messages_delivered_total"] > 0
    assert samples["progress_publish_to_send_seconds_count"] > 0
    assert samples["state:SUCCESS"] >= 1
    socket.close()
    wait_for(lambda: scrape(stack)["progress_open_sockets"] == 0)
    client.close()


def test_workers_write_json_lines_that_name_the_job(stack: Stack) -> None:
    client = stack.login("bob")
    job = launch(client, task="demo.count", steps=2, delay=0.01)

    def job_lines() -> list[dict[str, object]]:
        found = []
        for line in stack.logs().splitlines():
            if line.startswith("{"):
                entry = json.loads(line)
                if entry.get("job_id") == job["id"]:
                    found.append(entry)
        return found

    lines = wait_for(job_lines, timeout=20)
    assert all(entry["user_id"] == lines[0]["user_id"] for entry in lines)
    assert {"ts", "level", "logger", "message"} <= set(lines[0])
    client.close()
