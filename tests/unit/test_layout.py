"""The layout: each module says what it holds and where it runs; the wheel ships py.typed."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import progress

ROOT = Path(progress.__file__).parent
# How a module's first paragraph names the processes it runs in.
WHERE = (
    "any process",
    "every process",
    "web process",
    "worker process",
    "pure",
    "a terminal",
)
MODULES = sorted(
    path
    for path in ROOT.rglob("*.py")
    if ("migrations" not in path.parts and path.name != "__init__.py") or path.parent == ROOT
)


@pytest.mark.parametrize("path", MODULES, ids=lambda path: str(path.relative_to(ROOT)))
def test_each_module_says_what_it_holds_and_where_it_runs(path: Path) -> None:
    doc = ast.get_docstring(ast.parse(path.read_text()))
    assert doc, f"{path} has no docstring"
    first = doc.split("\n\n")[0].replace("\n", " ").lower()
    assert any(where in first for where in WHERE), f"{path}: {first!r} names no process"


@pytest.mark.parametrize("side", ["protocol", "core", "worker", "web"])
def test_each_side_says_what_it_may_import(side: str) -> None:
    doc = ast.get_docstring(ast.parse((ROOT / side / "__init__.py").read_text())) or ""
    assert "make lint enforces it" in doc


def test_no_module_passes_400_lines() -> None:
    # make lint checks this with pylint too; here it fails fast, with every offender named.
    long = {
        str(path.relative_to(ROOT)): n
        for path in MODULES
        if (n := len(path.read_text().splitlines())) > 400
    }
    assert not long
