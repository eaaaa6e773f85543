"""Live progress of Celery jobs, pushed to browsers over Channels.

Task code imports from here: `register`, `set_progress`, `track`,
`attach_file` and `JobError`. They load lazily, so importing this package
never touches models before Django is ready.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_PUBLIC = {
    "register": "progress.registry",
    "set_progress": "progress.reporter",
    "track": "progress.reporter",
    "attach_file": "progress.reporter",
    "JobError": "progress.exceptions",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'progress' has no attribute {name!r}")
    return getattr(import_module(module), name)
