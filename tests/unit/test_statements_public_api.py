"""The statements app stands for another team's app: it may use progress's public names only."""

from __future__ import annotations

import ast
from pathlib import Path

import progress
from tests.support import ROOT

APP = ROOT / "statements"


def imports_of_progress(path: Path) -> list[tuple[int, str]]:
    """(line, what) for every import of progress in a module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [
                (node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "progress"
            ]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] != "progress":
                continue
            found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return found


def test_the_second_app_imports_only_public_names_of_progress() -> None:
    modules = sorted(APP.rglob("*.py"))
    assert modules, "the statements app has no modules"
    used, private = set(), []
    for path in modules:
        for line, name in imports_of_progress(path):
            module, _, attribute = name.rpartition(".")
            if module != "progress" or attribute not in progress.__all__:
                private.append(f"{path.relative_to(ROOT)}:{line}: {name}")
            used.add(attribute)
    assert private == [], "non-public imports of progress:\n" + "\n".join(private)
    # It really is built on them: launching, reporting, reacting and watching.
    assert {"launch", "stages", "bar", "job_finished", "subscribe", "ProgressConsumerMixin"} <= used


def test_every_public_name_resolves() -> None:
    for name in progress.__all__:
        assert getattr(progress, name) is not None, name
