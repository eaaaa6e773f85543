"""protocol.js, the browser's copy of the protocol's names, is the Python enums' exactly.

Node imports the module and prints its exports as JSON; each one is compared with the enum
it mirrors, so a state, frame type, action, error or close code added, renamed or renumbered
on one side only fails here, naming the difference.
"""

from __future__ import annotations

import enum
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from progress.protocol import frames
from progress.protocol.frames import Action, CloseCode, ErrorCode, EventType
from progress.protocol.states import FINAL_STATES, RETRYABLE_STATES, State

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "progress" / "static" / "progress" / "protocol.js"

# protocol.js's export -> the Python enum it mirrors, member by member.
ENUMS: dict[str, type[enum.Enum]] = {
    "State": State,
    "EventType": EventType,
    "Action": Action,
    "ErrorCode": ErrorCode,
    "CloseCode": CloseCode,
}


@pytest.fixture(scope="module")
def exports() -> dict[str, Any]:
    """protocol.js's exports as node sees them (functions drop out of the JSON)."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed, so protocol.js cannot be loaded to compare")
    script = f"import * as p from {json.dumps(MODULE.as_uri())}; console.log(JSON.stringify(p));"
    done = subprocess.run(
        [node, "--input-type=module", "-e", script],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, f"node could not import {MODULE.name}:\n{done.stderr}"
    return json.loads(done.stdout)


def differences(name: str, python: dict[str, object], js: object) -> list[str]:
    """Each way the JS object `name` differs from the Python members `python`, in words."""
    if not isinstance(js, dict):
        return [f"protocol.js exports {name} as {js!r}, not an object of names"]
    found = [
        f"{name}.{member} = {value!r} is in Python but missing from protocol.js"
        for member, value in python.items()
        if member not in js
    ]
    found += [
        f"{name}.{member} = {js[member]!r} in protocol.js, but {value!r} in Python"
        for member, value in python.items()
        if member in js and (js[member] != value or type(js[member]) is not type(value))
    ]
    found += [
        f"{name}.{member} = {value!r} is in protocol.js but not in Python"
        for member, value in js.items()
        if member not in python
    ]
    return found


@pytest.mark.parametrize("name", ENUMS)
def test_each_enum_has_the_same_names_and_values_in_js(exports: dict[str, Any], name: str) -> None:
    python = {member.name: member.value for member in ENUMS[name]}
    problems = differences(name, python, exports.get(name))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("name", "states"), [("FINAL_STATES", FINAL_STATES), ("RETRYABLE_STATES", RETRYABLE_STATES)]
)
def test_the_sets_of_states_are_the_same_in_js(
    exports: dict[str, Any], name: str, states: frozenset[State]
) -> None:
    js = exports.get(name)
    assert isinstance(js, list), f"protocol.js exports {name} as {js!r}, not a list"
    python = {state.value for state in states}
    problems = [f"protocol.js's {name} lacks {s!r}" for s in sorted(python - set(js))]
    extra = [state for state in js if state not in python]
    if extra:
        problems.append(f"protocol.js's {name} has {extra}, not in Python's")
    if len(js) != len(set(js)):
        problems.append(f"protocol.js's {name} repeats a state: {js}")
    assert not problems, "\n".join(problems)


# protocol.js's plain constants, each the value of the frames.py constant of that name.
CONSTANTS = ("PROTOCOL_VERSION", "HELD_PARAMETER", "MAX_HELD")


@pytest.mark.parametrize("name", CONSTANTS)
def test_each_constant_has_the_same_value_in_js(exports: dict[str, Any], name: str) -> None:
    assert exports.get(name) == getattr(frames, name), f"protocol.js's {name} differs from Python's"


def test_js_exports_no_protocol_name_python_lacks(exports: dict[str, Any]) -> None:
    known = {"FINAL_STATES", "RETRYABLE_STATES", *CONSTANTS}
    extra = sorted(set(exports) - set(ENUMS) - known)
    assert not extra, f"protocol.js exports {extra}, which no Python enum of the protocol has"
