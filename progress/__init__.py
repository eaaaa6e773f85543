"""Live progress of Celery jobs, pushed to browsers over Channels: the public API. Any process.

This package's names are its public API, for task code and for other Django
apps (docs/integrating.md): launch and read jobs, report progress, react to
jobs in Python and watch them. They load lazily, so importing this package
never touches models before Django is ready; type checkers see the real
imports below.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from progress.compat import ProgressRecorder
    from progress.core.commands import cancel, launch, retry
    from progress.core.reads import get_visible_job as get_job
    from progress.core.reads import state_of, visible_jobs
    from progress.core.registry import register
    from progress.exceptions import (
        InvalidParams,
        JobError,
        JobNotFound,
        NotRetryable,
        ProgressError,
        TooManyJobs,
        TooManyLaunches,
        TooManySockets,
        UnknownTask,
    )
    from progress.models import Job
    from progress.protocol.states import JobDict, State
    from progress.signals import job_finished, job_progress, job_started
    from progress.web.mixins import ProgressConsumerMixin
    from progress.web.subscriptions import subscribe, subscribe_user
    from progress.worker.calls import attach_file, log, set_progress, track
    from progress.worker.groups import run_group
    from progress.worker.reporter import JobEnded
    from progress.worker.steps import bar, stages

# Public name -> "module" (the same name there) or "module:attribute".
_PUBLIC = {
    # Making tasks launchable, and launching them.
    "register": "progress.core.registry",
    "launch": "progress.core.commands",
    "cancel": "progress.core.commands",
    "retry": "progress.core.commands",
    "get_job": "progress.core.reads:get_visible_job",
    "visible_jobs": "progress.core.reads",
    "state_of": "progress.core.reads",
    "Job": "progress.models",
    "State": "progress.protocol.states",
    "JobDict": "progress.protocol.states",
    # Reporting, from task code and the helpers it calls (worker processes).
    "set_progress": "progress.worker.calls",
    "track": "progress.worker.calls",
    "attach_file": "progress.worker.calls",
    "log": "progress.worker.calls",
    "stages": "progress.worker.steps",
    "bar": "progress.worker.steps",
    "ProgressRecorder": "progress.compat",
    "run_group": "progress.worker.groups",
    # Reacting in Python.
    "job_started": "progress.signals",
    "job_progress": "progress.signals",
    "job_finished": "progress.signals",
    # Watching, from web processes.
    "subscribe": "progress.web.subscriptions",
    "subscribe_user": "progress.web.subscriptions",
    "ProgressConsumerMixin": "progress.web.mixins",
    # Errors.
    "JobError": "progress.exceptions",
    "JobEnded": "progress.worker.reporter",
    "ProgressError": "progress.exceptions",
    "JobNotFound": "progress.exceptions",
    "UnknownTask": "progress.exceptions",
    "InvalidParams": "progress.exceptions",
    "TooManyJobs": "progress.exceptions",
    "TooManyLaunches": "progress.exceptions",
    "TooManySockets": "progress.exceptions",
    "NotRetryable": "progress.exceptions",
}

__all__ = [
    "InvalidParams",
    "Job",
    "JobDict",
    "JobEnded",
    "JobError",
    "JobNotFound",
    "NotRetryable",
    "ProgressConsumerMixin",
    "ProgressError",
    "ProgressRecorder",
    "State",
    "TooManyJobs",
    "TooManyLaunches",
    "TooManySockets",
    "UnknownTask",
    "attach_file",
    "bar",
    "cancel",
    "get_job",
    "job_finished",
    "job_progress",
    "job_started",
    "launch",
    "log",
    "register",
    "retry",
    "run_group",
    "set_progress",
    "stages",
    "state_of",
    "subscribe",
    "subscribe_user",
    "track",
    "visible_jobs",
]


def __getattr__(name: str) -> Any:
    """Runs on first use of a public name: imports it from the module that holds it."""
    target = _PUBLIC.get(name)
    if target is None:
        raise AttributeError(f"module 'progress' has no attribute {name!r}")
    module, _, attribute = target.partition(":")
    value = getattr(import_module(module), attribute or name)
    globals()[name] = value
    return value
