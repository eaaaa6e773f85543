"""Live progress of Celery jobs, pushed to browsers over Channels.

This package's names are its public API, for task code and for other Django
apps (docs/integrating.md): launch and read jobs, report progress, react to
jobs in Python and watch them. They load lazily, so importing this package
never touches models before Django is ready.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

# Public name -> "module" (the same name there) or "module:attribute".
_PUBLIC = {
    # Making tasks launchable, and launching them.
    "register": "progress.registry",
    "launch": "progress.services",
    "cancel": "progress.services",
    "retry": "progress.services",
    "get_job": "progress.services:get_visible_job",
    "visible_jobs": "progress.services",
    "state_of": "progress.services",
    "Job": "progress.models",
    "State": "progress.events",
    "JobDict": "progress.events",
    # Reporting, from task code and the helpers it calls.
    "set_progress": "progress.reporter",
    "track": "progress.reporter",
    "attach_file": "progress.reporter",
    "log": "progress.reporter",
    "stages": "progress.steps",
    "bar": "progress.steps",
    "ProgressRecorder": "progress.compat",
    "run_group": "progress.groups",
    # Reacting in Python.
    "job_started": "progress.signals",
    "job_progress": "progress.signals",
    "job_finished": "progress.signals",
    "subscribe": "progress.subscriptions",
    "subscribe_user": "progress.subscriptions",
    "ProgressConsumerMixin": "progress.mixins",
    # Errors.
    "JobError": "progress.exceptions",
    "ProgressError": "progress.exceptions",
    "JobNotFound": "progress.exceptions",
    "UnknownTask": "progress.exceptions",
    "InvalidParams": "progress.exceptions",
    "TooManyJobs": "progress.exceptions",
    "TooManyLaunches": "progress.exceptions",
    "TooManySockets": "progress.exceptions",
    "NotRetryable": "progress.exceptions",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    target = _PUBLIC.get(name)
    if target is None:
        raise AttributeError(f"module 'progress' has no attribute {name!r}")
    module, _, attribute = target.partition(":")
    return getattr(import_module(module), attribute or name)
