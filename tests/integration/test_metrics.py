"""GET /metrics/: who may read it, and the figures moving as jobs, sockets and sweeps do."""

from __future__ import annotations

import os
from typing import Any

import pytest
from billiard.exceptions import WorkerLostError
from channels.routing import URLRouter
from channels.testing.websocket import WebsocketCommunicator
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured
from django.test import Client, override_settings
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from progress.conf import validate
from progress.core import machine, maintenance
from progress.core.publisher import get_publisher
from progress.models import Job
from progress.protocol.states import State, dumps_compact
from progress.routing import websocket_urlpatterns
from progress.worker import handlers as worker
from tests.helpers.inprocess import state_of
from tests.support import wait_for

TOKEN = "metrics-test-token-5b1f"


def progress(**values: Any) -> override_settings:
    return override_settings(
        PROGRESS={"REDIS_URL": os.environ["REDIS_URL"], "METRICS_TOKEN": TOKEN, **values}
    )


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def scrape(client: Client | None = None) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample GET /metrics/ serves, by name and labels."""
    response = (client or Client()).get("/metrics/", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.content
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def test_the_token_setting_is_a_string_empty_by_default() -> None:
    assert validate({})["METRICS_TOKEN"] == ""
    assert validate({"METRICS_TOKEN": "t"})["METRICS_TOKEN"] == "t"
    with pytest.raises(ImproperlyConfigured, match="METRICS_TOKEN"):
        validate({"METRICS_TOKEN": 1234})


@pytest.mark.django_db
def test_no_token_configured_means_no_endpoint() -> None:
    with progress(METRICS_TOKEN=""):
        response = Client().get("/metrics/", HTTP_AUTHORIZATION="Bearer ")
    assert response.status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {TOKEN}", TOKEN, "Bearer"])
def test_a_request_without_the_token_gets_401(header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    with progress():
        response = Client().get("/metrics/", headers=headers)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"progress_" not in response.content


@pytest.mark.django_db
def test_a_signed_in_user_who_is_not_staff_gets_401(alice: User) -> None:
    client = Client()
    client.force_login(alice)
    with progress():
        assert client.get("/metrics/").status_code == 401


@pytest.mark.django_db
def test_the_token_or_a_staff_login_reads_the_metrics_never_cached(staff: User) -> None:
    with progress():
        response = Client().get("/metrics/", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/plain")
        assert "no-cache" in response["Cache-Control"] and "private" in response["Cache-Control"]
        body = response.content.decode()
        for name in [
            "progress_open_sockets",
            "progress_messages_published_total",
            "progress_messages_delivered_total",
            "progress_publish_to_send_seconds",
            "progress_jobs",
            "progress_worker_lost_total",
        ]:
            assert f"# TYPE {name} " in body, name
        assert "_created" not in body
        client = Client()
        client.force_login(staff)
        assert client.get("/metrics/").status_code == 200


@pytest.mark.django_db
def test_the_jobs_gauge_counts_the_rows_by_state(alice: User) -> None:
    for state in ["PENDING", "PENDING", "STARTED", "SUCCESS"]:
        Job.objects.create(owner=alice, task="demo.count", state=state)
    with progress():
        samples = scrape()
    jobs = {
        labels[0][1]: count for (name, labels), count in samples.items() if name == "progress_jobs"
    }
    assert jobs == {
        "PENDING": 2,
        "STARTED": 1,
        "PROGRESS": 0,
        "RETRY": 0,
        "SUCCESS": 1,
        "FAILURE": 0,
        "REVOKED": 0,
    }


@pytest.mark.django_db
def test_publishing_a_state_and_log_lines_moves_the_published_counters(job: Job) -> None:
    jobs, logs = (
        value("progress_messages_published_total", kind="job"),
        value("progress_messages_published_total", kind="log"),
    )
    publisher = get_publisher()
    assert publisher.publish(state_of(job, State.STARTED)).result(10) is not None
    line = dumps_compact({"ts": 1.0, "level": "INFO", "text": "hi"})
    publisher.publish_log(str(job.pk), job.owner_id, [line]).result(10)
    wait_for(lambda: value("progress_messages_published_total", kind="job") == jobs + 1)
    wait_for(lambda: value("progress_messages_published_total", kind="log") == logs + 1)
    with progress():
        samples = scrape()
    assert samples[("progress_messages_published_total", (("kind", "job"),))] >= jobs + 1


@pytest.mark.django_db
def test_the_sweep_counts_each_job_it_ends_lost(alice: User) -> None:
    job = Job.objects.create(owner=alice, task="demo.count")
    machine.commit_state(state_of(job, State.STARTED))
    before = value("progress_worker_lost_total")
    with progress(WORKER_LOST_AFTER=0.4):
        assert maintenance.sweep_lost_jobs() == []  # The first look only suspects.
        assert value("progress_worker_lost_total") == before
        assert wait_for(maintenance.sweep_lost_jobs, timeout=5) == [str(job.pk)]
        assert value("progress_worker_lost_total") == before + 1
        assert maintenance.sweep_lost_jobs() == []  # Ended: never counted twice.
        assert scrape()[("progress_worker_lost_total", ())] == before + 1


@pytest.mark.django_db
def test_a_worker_main_process_counts_a_job_whose_child_died(alice: User) -> None:
    lost, failed = (Job.objects.create(owner=alice, task="demo.count") for _ in range(2))
    before = value("progress_worker_lost_total")
    # Not running in this process: as in a worker's main process when the child died.
    worker._on_failure(task_id=str(failed.pk), exception=RuntimeError("boom"))
    assert value("progress_worker_lost_total") == before
    worker._on_failure(task_id=str(lost.pk), exception=WorkerLostError("died"))
    assert value("progress_worker_lost_total") == before + 1
    worker._on_failure(task_id=str(lost.pk), exception=WorkerLostError("died"))  # Ended already.
    assert value("progress_worker_lost_total") == before + 1
    assert Job.objects.get(pk=lost.pk).state == "FAILURE"


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_socket_counts_while_open_and_its_frames_are_counted_and_timed(job: Job) -> None:
    sockets = value("progress_open_sockets")
    delivered = value("progress_messages_delivered_total")
    timed = value("progress_publish_to_send_seconds_count")
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), "/ws/progress/")
    communicator.scope["user"] = job.owner
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    assert (await communicator.receive_json_from(timeout=5))["type"] == "snapshot"
    assert value("progress_open_sockets") == sockets + 1
    get_publisher().publish(state_of(job, State.PROGRESS, 3))
    assert (await communicator.receive_json_from(timeout=5))["job"]["current"] == 3
    assert value("progress_messages_delivered_total") == delivered + 1
    assert value("progress_publish_to_send_seconds_count") == timed + 1
    assert value("progress_publish_to_send_seconds_sum") >= 0
    await communicator.disconnect()
    assert value("progress_open_sockets") == sockets
