"""The layout: each module says what it holds and where it runs; the wheel ships py.typed."""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
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


REPO = ROOT.parent
# A source path the docs, comments and docstrings name: `progress/core/store.py`,
# `tests/system/test_faults.py::test_...`. Static and template paths (`progress/widget.js`)
# are relative to their own roots, and left out.
SOURCE_PATH = re.compile(
    r"(?<![\w/.])((?:progress|tests|bench|devstack|statements|workers|tasks_site)/[\w/]+\.py)\b"
)
# A dotted name in one of progress's sides: `progress.core.commands.launch_params`.
SIDE_NAME = re.compile(r"(?<![\w.])progress\.(?:core|web|worker|protocol)(?:\.\w+)+")


def named_sources() -> list[Path]:
    tracked = subprocess.run(
        ["git", "ls-files", "*.py", "*.md", "*.toml", "*.txt", "*.yml", "*.html", "Makefile"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [REPO / name for name in tracked if "migrations" not in name]


def resolves(name: str) -> bool:
    """Whether `name` is a module of the tree, or one attribute of a module."""
    parts = name.split(".")
    for cut in (len(parts), len(parts) - 1):
        base = REPO.joinpath(*parts[:cut])
        if base.with_suffix(".py").exists() or (base / "__init__.py").exists():
            if cut == len(parts):
                return True
            module = importlib.import_module(".".join(parts[:cut]))
            return hasattr(module, parts[-1])
    return False


@pytest.mark.skipif(not (REPO / ".git").exists(), reason="a checkout of the repository only")
def test_what_the_tree_names_exists() -> None:
    # A move leaves old paths in prose that no import checks; this does.
    stale = []
    for path in named_sources():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            where = f"{path.relative_to(REPO)}:{number}"
            stale += [
                f"{where}: {found}"
                for found in SOURCE_PATH.findall(line)
                if not (REPO / found).exists()
            ]
            stale += [
                f"{where}: {found}"
                for found in SIDE_NAME.findall(line)
                if not resolves(found.rstrip("."))
            ]
    assert not stale, "\n".join(stale)
