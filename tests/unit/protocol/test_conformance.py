"""The recovery table (tests/conformance/recovery.json) against NewestSeqs, the rule Python's
readers apply: the socket's Outbox, the SSE streams' and subscribe iterators' Inbox, and the
hub. tests/js/conformance.test.mjs runs the same table against the browser's JobStore."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from progress.protocol.frames import parse_held, replaced_jobs
from progress.protocol.states import FINAL_STATES, Mark, NewestSeqs, State

TABLE = json.loads((Path(__file__).parents[2] / "conformance" / "recovery.json").read_text())


def mark(offer: list[Any]) -> Mark:
    epoch, seq, state, _current = offer
    return Mark(epoch, seq, State(state) in FINAL_STATES)


@pytest.mark.parametrize("case", TABLE["offers"], ids=lambda case: case["name"])
def test_a_reader_ends_up_holding_what_the_table_says(case: dict[str, Any]) -> None:
    seen = NewestSeqs()
    shown: list[Any] = []
    applied = []
    for offer in case["offers"]:
        took = seen.note("j", mark(offer))
        applied.append(took)
        if took:
            shown = offer
    assert applied == case["applied"]
    epoch, seq, state = case["shows"]
    assert seen["j"] == Mark(epoch, seq, State(state) in FINAL_STATES)
    assert shown[:3] == [epoch, seq, state]


JOB = "3f2b8c1e-6d4a-4f0e-9a57-2c8e1b7d9a10"


def held_of(case: dict[str, Any], current: Mark) -> dict[str, Mark] | None:
    """What the case's client holds, relative to `current`, the server's state."""
    held = case["held"]
    if held is None:
        return None
    epoch = current.epoch if held["epoch"] == "same" else "an-older-epoch"
    seq = current.seq + {"current": 0, "older": -2, "future": 5}[held["seq"]]
    return {JOB: Mark(epoch, seq)}


@pytest.mark.parametrize("case", TABLE["reconnects"], ids=lambda case: case["name"])
def test_a_snapshot_says_which_held_states_it_replaced(case: dict[str, Any]) -> None:
    current = Mark("e1", 7)
    held = held_of(case, current)
    query = (
        ""
        if held is None
        else "held=" + ",".join(f"{j}:{m.epoch}:{m.seq}" for j, m in held.items())
    )
    parsed = parse_held(query)
    assert parsed == held
    replaced = None if parsed is None else replaced_jobs(parsed, {JOB: current})
    assert (replaced is not None and not replaced) == bool(case["recovered"])
    assert (JOB in (replaced or [])) == case["replaced"]


@pytest.mark.parametrize(
    "query",
    ["held=nope:e1:3", "held=" + JOB + ":e1:x", "held=" + JOB + ":" + "e" * 65 + ":3"],
)
def test_a_malformed_held_entry_is_refused_with_the_shape_it_needs(query: str) -> None:
    from progress.protocol.frames import FrameError

    with pytest.raises(FrameError, match="<job id>:<epoch>:<seq>"):
        parse_held(query)


def test_held_entries_of_a_client_of_protocol_1_have_no_epoch() -> None:
    assert parse_held(f"held={JOB}:5") == {JOB: Mark("", 5)}
    assert parse_held(f"held={JOB}::5,") == {JOB: Mark("", 5)}
    assert parse_held("other=1") is None
