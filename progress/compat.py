"""celery-progress's ProgressRecorder, backed by the reporter. Worker processes, in tasks.

Change only the import (`from progress.compat import ProgressRecorder`) and
register the task with `progress.register`; its body reports here unchanged.
"""

from __future__ import annotations

from typing import Any

from progress.worker.calls import set_progress


class ProgressRecorder:
    """celery-progress's recorder: each set_progress() reports to the running job."""

    def __init__(self, task: Any = None) -> None:
        self.task = task

    def set_progress(self, current: float, total: float, description: str = "") -> dict[str, Any]:
        """Runs where celery-progress's would; returns its `meta` dict, as it does."""
        set_progress(current, total, description or None)
        percent = 0.0
        if total > 0:
            percent = round(float(current) / float(total) * 100, 2)
        return {
            "pending": False,
            "current": current,
            "total": total,
            "percent": percent,
            "description": description,
        }


# celery-progress's WebSocket flavour reports the same way here: the push is built in.
WebSocketProgressRecorder = ProgressRecorder
