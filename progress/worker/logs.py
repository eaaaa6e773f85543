"""Task code's `logging` records, kept as the running job's log lines. Worker processes.

Installed on the root logger in each worker child: a record emitted on the
thread of a task launched through progress, at PROGRESS["LOG_LEVEL"] or above,
becomes a line of that job's log. Only the record's message is kept, never its
traceback: what users read must not carry internals. The stack's own loggers
(Celery, kombu, redis, progress) never reach a job's log.
"""

from __future__ import annotations

import logging

from progress.conf import progress_settings
from progress.worker.reporter import current_reporter

# Loggers of the machinery around a task, whose lines are not the task's.
IGNORED = ("celery", "kombu", "amqp", "billiard", "redis", "asyncio", "progress", "django.db")


class JobLogHandler(logging.Handler):
    """Hands each record of a running job's task to its reporter."""

    def emit(self, record: logging.LogRecord) -> None:
        """Runs for each record that reaches the root logger, in the thread that logged it."""
        reporter = current_reporter()
        if reporter is None or record.name.startswith(IGNORED):
            return
        try:
            text = record.getMessage()
        except Exception:  # A bad format string in task code; logging reports it.
            self.handleError(record)
            return
        reporter.log(text, record.levelname)


def install() -> JobLogHandler:
    """Runs in each worker child after fork: adds the handler to the root logger once."""
    root = logging.getLogger()
    for handler in root.handlers:
        if isinstance(handler, JobLogHandler):
            return handler
    handler = JobLogHandler(level=logging.getLevelName(str(progress_settings.LOG_LEVEL)))
    root.addHandler(handler)
    return handler
