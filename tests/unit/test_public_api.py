"""The public API: every name in progress.__all__ loads, and type checkers see the real ones."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path
from typing import TYPE_CHECKING, assert_type

import progress
from progress.models import Job

INIT = Path(progress.__file__)


def _type_checking_imports() -> dict[str, str]:
    """Public name -> "module:attribute", as the TYPE_CHECKING block of __init__.py imports it."""
    tree = ast.parse(INIT.read_text())
    block = next(
        node
        for node in tree.body
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING"
    )
    found = {}
    for node in block.body:
        assert isinstance(node, ast.ImportFrom) and node.module
        for alias in node.names:
            found[alias.asname or alias.name] = f"{node.module}:{alias.name}"
    return found


def test_all_lists_exactly_the_lazy_names() -> None:
    assert sorted(progress.__all__) == progress.__all__
    assert set(progress.__all__) == set(progress._PUBLIC)


def test_type_checkers_import_each_name_from_where_it_loads_at_run_time() -> None:
    lazy = {
        name: target if ":" in target else f"{target}:{name}"
        for name, target in progress._PUBLIC.items()
    }
    assert _type_checking_imports() == lazy


def test_every_public_name_loads_and_is_the_object_its_module_holds() -> None:
    for name in progress.__all__:
        module, _, attribute = progress._PUBLIC[name].partition(":")
        assert getattr(progress, name) is getattr(
            importlib.import_module(module), attribute or name
        )


def test_an_unknown_name_is_an_attribute_error() -> None:
    try:
        progress.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("progress.no_such_name did not raise")


def test_the_package_is_typed_for_its_users() -> None:
    assert (INIT.parent / "py.typed").exists()


if TYPE_CHECKING:
    # Checked by mypy (make typecheck), never run: were the names Any, as a lazy
    # __getattr__ alone makes them, these would fail.
    def _seen_by_type_checkers(user: object) -> None:
        assert_type(progress.launch(user, "demo.count"), Job)  # type: ignore[arg-type]
        assert_type(progress.State.SUCCESS.is_final, bool)
