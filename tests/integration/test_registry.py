"""Launchable tasks and the validation of their params."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser

from progress import launch
from progress.core import registry
from progress.exceptions import InvalidParams, ProgressError, UnknownTask


def count() -> registry.LaunchableTask:
    return registry.get("demo.count")


def test_defaults_fill_in_missing_params() -> None:
    assert count().validate({}) == {"steps": 20, "delay": 0.2, "fail_at": None}
    assert count().validate({"steps": 5, "fail_at": None})["steps"] == 5


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"steps": 0}, "steps"),
        ({"steps": 100_001}, "steps"),
        ({"steps": "many"}, "steps"),
        ({"steps": 1.5}, "steps"),
        ({"steps": True}, "steps"),
        ({"steps": [3]}, "steps"),
        ({"delay": -1}, "delay"),
        ({"delay": 11}, "delay"),
        ({"delay": "nan"}, "delay"),
        ({"fail_at": "x"}, "fail_at"),
        ({"steps": None}, "steps"),
        ({"rm_rf": 1}, "rm_rf"),
    ],
)
def test_bad_params_name_the_field(params: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidParams) as error:
        count().validate(params)
    assert field in error.value.fields


def test_every_bad_param_is_named_at_once_unknown_or_not() -> None:
    with pytest.raises(InvalidParams) as error:
        count().validate({"steps": 0, "colour": "red", "delay": -1})
    assert set(error.value.fields) == {"colour", "delay", "steps"}
    assert error.value.fields["colour"] == ["Unknown parameter."]


def test_register_above_shared_task_or_it_says_so() -> None:
    def resize() -> None:
        """A function that @shared_task has not made a task yet."""

    with pytest.raises(TypeError, match=r"put @register\(...\) above @shared_task"):
        registry.register(title="Resize")(resize)
    assert not registry.is_registered("resize")


def test_a_job_needs_a_user_who_is_logged_in() -> None:
    with pytest.raises(ProgressError, match="logged-in user"):
        launch(AnonymousUser(), "demo.count", steps=3)


@pytest.mark.parametrize("params", [[1, 2], "steps=3", 7])
def test_params_must_be_an_object(params: object) -> None:
    with pytest.raises(InvalidParams) as error:
        count().validate(params)
    assert "params" in error.value.fields


@pytest.mark.parametrize("name", ["nope", "", None, 3, "os.system"])
def test_unknown_tasks_cannot_be_launched(name: object) -> None:
    with pytest.raises(UnknownTask):
        registry.get(name)


def test_the_schema_describes_types_and_limits() -> None:
    schema = count().params_schema()
    assert schema["steps"] == {
        "type": "integer", "label": "Steps", "required": True, "default": 20,
        "min": 1, "max": 100_000,
    }  # fmt: skip
    assert schema["delay"]["type"] == "number" and schema["delay"]["max"] == 10
    assert schema["fail_at"]["required"] is False


def test_the_demo_tasks_are_launchable() -> None:
    names = [spec.name for spec in registry.launchable()]
    assert names == ["demo.count", "demo.batch", "reports.sales_csv"]
