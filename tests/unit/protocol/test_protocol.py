"""The wire format: states, the job JSON of the contract, frames and names."""

from __future__ import annotations

import json
import re
import uuid

import pytest

from progress.protocol.frames import (
    CloseCode,
    ErrorCode,
    FrameError,
    job_frame,
    parse_client_frame,
    parse_job_id,
    snapshot_frame,
)
from progress.protocol.layer import user_group
from progress.protocol.states import JobState, State

CONTRACT_KEYS = [
    "id", "task", "state", "current", "total", "percent", "message", "seq", "epoch", "ts",
    "eta", "rate", "result", "error", "created", "started", "finished",
]  # fmt: skip


def make_state(**changes: object) -> JobState:
    values: dict[str, object] = {
        "id": str(uuid.uuid4()), "owner_id": 7, "task": "demo.count", "state": State.PROGRESS,
        "current": 3, "total": 10, "message": "step 3 of 10", "ts": 1763740000.123,
        "created": "2026-11-21T10:00:00+00:00",
    }  # fmt: skip
    values.update(changes)
    return JobState(**values)  # type: ignore[arg-type]


def test_final_states_are_exactly_the_three_endings() -> None:
    assert {s for s in State if s.is_final} == {State.SUCCESS, State.FAILURE, State.REVOKED}


def test_job_json_has_the_contract_keys_in_order() -> None:
    job = json.loads(make_state().to_json(7))
    assert list(job) == CONTRACT_KEYS
    assert job["seq"] == 7 and job["percent"] == 30.0 and job["current"] == 3
    assert "owner_id" not in job


@pytest.mark.parametrize(
    ("current", "total", "percent"),
    [(0, 10, 0.0), (10, 10, 100.0), (15, 10, 100.0), (-1, 10, 0.0), (5, None, None), (5, 0, None)],
)
def test_percent_stays_within_0_and_100_or_is_null(
    current: float, total: float | None, percent: float | None
) -> None:
    assert make_state(current=current, total=total).percent == percent


def test_messages_with_quotes_and_unicode_survive_the_split_encoding() -> None:
    tricky = 'say "seq":1, \\ and ünïcødé ✓ </script>'
    job = json.loads(make_state(message=tricky, result={"list": [], "seq": 3}).to_json(12))
    assert job["message"] == tricky and job["seq"] == 12 and job["result"]["seq"] == 3


def test_frames_wrap_jobs_encoded_once() -> None:
    payload = make_state().to_json(2)
    assert json.loads(job_frame(payload)) == {"type": "job", "job": json.loads(payload)}
    assert json.loads(snapshot_frame([payload, payload]))["jobs"][1]["seq"] == 2
    assert json.loads(snapshot_frame([])) == {"type": "snapshot", "jobs": [], "protocol": 2}


def test_group_names_are_built_from_ids_not_raw_input() -> None:
    allowed = re.compile(r"^[a-zA-Z0-9\-_.]{1,99}$")
    assert allowed.match(user_group(42)) and user_group(42) != "42"
    with pytest.raises(ValueError):
        user_group("../../etc")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("not json", ErrorCode.BAD_JSON),
        ("[1, 2]", ErrorCode.BAD_FRAME),
        ('{"action": "explode", "job": "x"}', ErrorCode.UNKNOWN_ACTION),
        ('{"action": "subscribe"}', ErrorCode.BAD_FRAME),
        ('{"action": "subscribe", "job": 5}', ErrorCode.BAD_FRAME),
        ("[" * 100_000, ErrorCode.BAD_FRAME),
    ],
)
def test_bad_frames_get_an_error_code(text: str, code: ErrorCode) -> None:
    with pytest.raises(FrameError) as error:
        parse_client_frame(text, None, max_bytes=200_000)
    assert error.value.code in {code, ErrorCode.BAD_JSON}
    assert error.value.close_code is None


def test_a_frame_over_the_limit_closes_with_1009() -> None:
    with pytest.raises(FrameError) as error:
        parse_client_frame('{"action": "subscribe", "job": "' + "x" * 5000 + '"}', None, 4096)
    assert error.value.close_code == CloseCode.MESSAGE_TOO_BIG == 1009


def test_binary_frames_are_refused() -> None:
    with pytest.raises(FrameError) as error:
        parse_client_frame(None, b"\x00\x01", 4096)
    assert error.value.code == ErrorCode.BAD_FRAME and error.value.close_code is None


def test_a_good_frame_parses() -> None:
    frame = parse_client_frame('{"action": "cancel", "job": "abc"}', None, 4096)
    assert (frame.action, frame.job) == ("cancel", "abc")


@pytest.mark.parametrize("value", ["nope", "", 12, None, "a" * 100, {"x": 1}])
def test_job_ids_that_cannot_be_uuids_are_none(value: object) -> None:
    assert parse_job_id(value) is None
