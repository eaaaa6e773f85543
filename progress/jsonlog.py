"""Structured logs (LOG_FORMAT=json): one JSON object per line, with its job. Any process.

Settings load this module while logging is configured, before Django's apps
are: it imports nothing of the app at load time.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

# The record attributes that name a line's job and user; callers pass them with `extra=`.
JOB_ID = "job_id"
USER_ID = "user_id"

_REPORTER_MODULE = "progress.worker.reporter"


def about(job_id: object, user_id: int | None = None) -> dict[str, Any]:
    """The `extra=` of a log call about a job: its id, and its owner where known."""
    return {JOB_ID: str(job_id), USER_ID: user_id}


class JobContextFilter(logging.Filter):
    """Fills in job_id and user_id from the job running in this thread (in workers), unless
    the call passed them with `extra=`; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Runs for each record that reaches the handler, in the thread that logged it."""
        if getattr(record, JOB_ID, None) is not None:
            return True
        # Importing the reporter loads the models, which a record logged while Django
        # starts must not do; until something imported it, no job can be running.
        reporter_module = sys.modules.get(_REPORTER_MODULE)
        reporter = reporter_module.current_reporter() if reporter_module is not None else None
        if reporter is not None:
            setattr(record, JOB_ID, reporter.state.id)
            if getattr(record, USER_ID, None) is None:
                setattr(record, USER_ID, reporter.state.owner_id)
        return True


class JsonFormatter(logging.Formatter):
    """Writes each record as one JSON object: ts, level, logger, message, job_id and user_id
    when known, and a traceback in `exc`, never inside `message`."""

    def format(self, record: logging.LogRecord) -> str:
        """Runs for each record the handler emits."""
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in (JOB_ID, USER_ID):
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value if isinstance(value, int | float) else str(value)
        # Cached on the record, as logging.Formatter does, for the other handlers.
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)
