"""Fuzzing with hypothesis: WebSocket frames and API bodies get a clear error, never a crash."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from channels.testing.websocket import WebsocketCommunicator
from django.contrib.auth.models import User
from django.test import Client
from hypothesis import given
from hypothesis import strategies as st

from progress.conf import progress_settings
from progress.models import Job
from progress.protocol.frames import Action, ErrorCode
from tests.helpers.inprocess import FUZZ, app
from tests.support import FUZZED

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
json_values = st.recursive(
    scalars | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
job_ids = st.one_of(
    st.uuids().map(str),
    st.text(max_size=80),
    st.sampled_from(["", "null", "../../etc/passwd", "0" * 64, "progress.user.1"]),
)
actions = st.one_of(st.sampled_from([a.value for a in Action]), st.text(max_size=12))


@st.composite
def client_frames(draw: st.DrawFn) -> tuple[str | None, bytes | None]:
    """One frame as a client could send it: any of the shapes a server meets in the wild."""
    kind = draw(st.sampled_from(["action", "json", "text", "binary", "deep", "huge"]))
    if kind == "action":
        frame: dict[str, Any] = {"action": draw(actions), "job": draw(job_ids | json_values)}
        frame.update(draw(st.dictionaries(st.text(max_size=8), json_values, max_size=3)))
        return json.dumps(frame), None
    if kind == "json":
        return json.dumps(draw(json_values)), None
    if kind == "text":
        return draw(st.text(max_size=200)), None
    if kind == "binary":
        return None, draw(st.binary(max_size=200))
    if kind == "deep":
        depth = draw(st.integers(min_value=100, max_value=100_000))
        return "[" * depth + "]" * depth, None
    size = draw(st.integers(min_value=1, max_value=3)) * progress_settings.MAX_FRAME_BYTES
    return json.dumps({"action": "subscribe", "job": "x" * size}), None


ERROR_CODES = {code.value for code in ErrorCode}


async def _connect(user: User) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(app, "/ws/progress/")
    communicator.scope["user"] = user
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    snapshot = json.loads(await communicator.receive_from(timeout=5))
    assert snapshot["type"] == "snapshot"
    return communicator


async def _send(communicator: WebsocketCommunicator, text: str | None, data: bytes | None) -> None:
    FUZZED["WebSocket frames"] += 1
    # send_to() refuses empty frames, which a client can send.
    if text is not None:
        await communicator.send_input({"type": "websocket.receive", "text": text})
    else:
        await communicator.send_input({"type": "websocket.receive", "bytes": data})


async def _throw(user: User, job: Job, frames: list[tuple[str | None, bytes | None]]) -> None:
    """Sends the frames; each gets an error or a job frame, or a 1009 close and a new socket."""
    communicator = await _connect(user)
    for text, data in frames:
        await _send(communicator, text, data)
        # Any exception in the consumer surfaces here, and fails the example.
        output = await communicator.receive_output(timeout=5)
        if output["type"] == "websocket.close":
            assert output["code"] == 1009, output
            communicator = await _connect(user)
            continue
        reply = json.loads(output["text"])
        if reply["type"] == "error":
            assert reply["error"] in ERROR_CODES and reply["detail"], reply
        else:
            assert reply["type"] == "job" and reply["job"]["id"] == str(job.id), reply
    # Still usable after whatever came before.
    await communicator.send_to(text_data=json.dumps({"action": "subscribe", "job": str(job.id)}))
    answer = json.loads(await communicator.receive_from(timeout=5))
    assert answer["type"] == "job" and answer["job"]["id"] == str(job.id)
    await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
@FUZZ
@given(frames=st.lists(client_frames(), min_size=1, max_size=6))
def test_any_websocket_frame_gets_an_error_or_a_clean_close_and_the_socket_stays_usable(
    alice: User, job: Job, frames: list[tuple[str | None, bytes | None]]
) -> None:
    asyncio.run(_throw(alice, job, frames))


@pytest.mark.django_db(transaction=True)
@FUZZ
@given(frames=st.lists(client_frames(), min_size=1, max_size=4))
def test_another_users_job_is_not_found_whatever_the_frame(
    bob: User, job: Job, frames: list[tuple[str | None, bytes | None]]
) -> None:
    """Bob fuzzes with Alice's job id among the ids: never a frame of her job."""

    async def run() -> None:
        communicator = await _connect(bob)
        for text, data in frames:
            foreign = json.dumps({"action": "subscribe", "job": str(job.id)})
            for frame_text, frame_data in ((text, data), (foreign, None)):
                await _send(communicator, frame_text, frame_data)
                output = await communicator.receive_output(timeout=5)
                if output["type"] == "websocket.close":
                    assert output["code"] == 1009
                    communicator = await _connect(bob)
                    continue
                reply = json.loads(output["text"])
                assert reply["type"] == "error", reply
        await communicator.disconnect()

    asyncio.run(run())


bodies = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"task": st.one_of(st.sampled_from(["demo.count", "reports.sales_csv"]), json_values)},
        optional={
            "params": st.one_of(
                json_values,
                st.fixed_dictionaries(
                    {},
                    optional={
                        "steps": json_values | st.integers(),
                        "delay": json_values | st.floats(),
                        "fail_at": json_values,
                        "rows": json_values | st.integers(),
                    },
                ),
            ),
            "extra": json_values,
        },
    ),
)


@pytest.mark.django_db
@FUZZ
@given(body=bodies)
def test_any_launch_body_gets_an_answer_never_a_500(alice: User, body: Any) -> None:
    client = Client()
    client.force_login(alice)
    FUZZED["launch bodies (POST /api/jobs/)"] += 1
    response = client.post("/api/jobs/", data=json.dumps(body), content_type="application/json")
    assert response.status_code in {201, 400, 429}, (response.status_code, response.content)
    payload = response.json()
    if response.status_code == 400:
        assert payload["error"], payload
    else:
        assert payload["state"] == "PENDING" and payload["task"] == body["task"]
