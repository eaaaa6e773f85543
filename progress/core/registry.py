"""The tasks users may launch: each with a title and a form for its params. Any process."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from celery import Task
from django import forms
from django.core import validators
from django.core.serializers.json import DjangoJSONEncoder

from progress.exceptions import InvalidParams, UnknownTask

TaskT = TypeVar("TaskT", bound=Task)

# FloatField and DecimalField subclass IntegerField, so they must come first.
_FIELD_TYPES: list[tuple[type[forms.Field], str]] = [
    (forms.BooleanField, "boolean"),
    (forms.FloatField, "number"),
    (forms.DecimalField, "number"),
    (forms.IntegerField, "integer"),
    (forms.ChoiceField, "choice"),
]


def _field_type(field: forms.Field) -> str:
    for field_class, name in _FIELD_TYPES:
        if isinstance(field, field_class):
            return name
    return "string"


def _describe(name: str, field: forms.Field) -> dict[str, Any]:
    """One param as GET /api/tasks/ shows it."""
    info: dict[str, Any] = {
        "type": _field_type(field),
        "label": str(field.label or name.replace("_", " ").capitalize()),
        "required": field.required,
        "default": field.initial,
    }
    if field.help_text:
        info["help"] = str(field.help_text)
    for validator in field.validators:
        if isinstance(validator, validators.MinValueValidator):
            info["min"] = validator.limit_value
        elif isinstance(validator, validators.MaxValueValidator):
            info["max"] = validator.limit_value
        elif isinstance(validator, validators.MaxLengthValidator):
            info["max_length"] = validator.limit_value
    if isinstance(field, forms.ChoiceField):
        info["choices"] = [choice[0] for choice in getattr(field, "choices", [])]
    return info


@dataclass(frozen=True)
class LaunchableTask:
    """A registered task: what the dashboard offers and the API accepts."""

    name: str
    title: str
    form_class: type[forms.Form]
    task: Task
    description: str = ""
    # Seconds between two published progress states of its jobs; None uses THROTTLE.
    throttle: float | None = None
    # Offered on the dashboard and GET /api/tasks/, and launchable over HTTP; a task
    # that is not can still be launched from Python (progress.launch()).
    public: bool = True

    def form(self) -> forms.Form:
        """An unbound form for the dashboard; its ids carry the task name so two never clash."""
        return self.form_class(auto_id=f"id_{self.name.replace('.', '_')}_%s")

    def params_schema(self) -> dict[str, dict[str, Any]]:
        return {name: _describe(name, field) for name, field in self.form_class.base_fields.items()}

    def validate(self, params: object) -> dict[str, Any]:
        """Cleans launch params into JSON-safe kwargs, or raises InvalidParams with field errors."""
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise InvalidParams({"params": ["Must be an object of parameter names to values."]})
        fields = self.form_class.base_fields
        # Every error at once, the unknown names' beside the known ones': a client that
        # fixes one should not find the next only on its next try.
        errors = {str(key): ["Unknown parameter."] for key in params if key not in fields}
        known = {key: value for key, value in params.items() if key in fields}
        defaults = {name: f.initial for name, f in fields.items() if f.initial is not None}
        form = self.form_class(data={**defaults, **known})
        if not form.is_valid():
            errors.update({k: [str(m) for m in v] for k, v in form.errors.items()})
        if errors:
            raise InvalidParams(dict(sorted(errors.items())))
        # Celery carries JSON only; round-trip so a date or Decimal arrives as text.
        cleaned: dict[str, Any] = json.loads(json.dumps(form.cleaned_data, cls=DjangoJSONEncoder))
        return cleaned


class NoParams(forms.Form):
    """The form of a task registered without one: it takes no params."""


_registry: dict[str, LaunchableTask] = {}


def register(
    *,
    title: str,
    form: type[forms.Form] | None = None,
    description: str = "",
    throttle: float | None = None,
    public: bool = True,
) -> Callable[[TaskT], TaskT]:
    """Makes a Celery task launchable and reportable; put it above @shared_task.

    It also works as a plain call on a task defined elsewhere:
    `register(title="Resize")(resize_task)`. `form` validates the launch params
    (none without one). `throttle` overrides PROGRESS["THROTTLE"] for this task's
    jobs. With `public=False` the task is launched only from Python
    (progress.launch()), never offered to users on the dashboard or over HTTP.
    """
    form_class = NoParams if form is None else form
    if throttle is not None and (
        isinstance(throttle, bool) or not isinstance(throttle, int | float) or not throttle >= 0
    ):
        raise ValueError(f"throttle must be a number >= 0 or None, not {throttle!r}.")

    def decorator(task: TaskT) -> TaskT:
        name = getattr(task, "name", None)
        if not isinstance(name, str) or not callable(getattr(task, "apply_async", None)):
            what = getattr(task, "__qualname__", repr(task))
            raise TypeError(
                f"register() takes a Celery task, not {what!r}: put @register(...) above "
                "@shared_task (or @app.task), which makes the task it registers."
            )
        existing = _registry.get(name)
        if existing is not None and existing.form_class is not form_class:
            raise ValueError(f"Task {name!r} is registered twice.")
        _registry[name] = LaunchableTask(
            name=name,
            title=title,
            form_class=form_class,
            task=task,
            description=description,
            throttle=throttle,
            public=public,
        )
        return task

    return decorator


def get(name: object, public_only: bool = False) -> LaunchableTask:
    """The registered task of that name, or UnknownTask; `public_only` for user input."""
    spec = _registry.get(name) if isinstance(name, str) else None
    if spec is None or (public_only and not spec.public):
        raise UnknownTask(name)
    return spec


def is_registered(name: object) -> bool:
    """Whether a task of that name was registered, public or not."""
    return isinstance(name, str) and name in _registry


def launchable() -> list[LaunchableTask]:
    """The tasks users may launch themselves, by title."""
    return sorted((spec for spec in _registry.values() if spec.public), key=lambda s: s.title)


def titles() -> dict[str, str]:
    """Every registered task's title by name, public or not: all are the user's jobs."""
    return {name: spec.title for name, spec in _registry.items()}


def title_of(name: str) -> str:
    spec = _registry.get(name)
    return spec.title if spec else name


def throttle_of(name: str) -> float | None:
    """The task's own throttle, or None when it has none (or is not registered)."""
    spec = _registry.get(name)
    return spec.throttle if spec else None
