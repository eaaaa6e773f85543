"""LOG_FORMAT=json: one JSON object per line, with the job and user a line is about."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest

from progress.jsonlog import JobContextFilter, JsonFormatter
from progress.models import Job
from progress.worker.reporter import JobReporter, activate, deactivate

Lines = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def lines() -> Iterator[Lines]:
    """Reads the JSON objects written so far for logger "x" by a handler set up as
    settings.LOGGING sets up the console."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(JobContextFilter())
    logger = logging.getLogger("x")
    logger.addHandler(handler)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logger.removeHandler(handler)


def test_a_line_is_one_json_object_with_its_fields(lines: Lines) -> None:
    logging.getLogger("x").warning("Disk at %d%%", 91, extra={"job_id": "j-1", "user_id": 7})
    logging.getLogger("x").warning("no job")
    first, second = lines()
    assert first["level"] == "WARNING" and first["logger"] == "x"
    assert first["message"] == "Disk at 91%"
    assert first["job_id"] == "j-1" and first["user_id"] == 7
    assert datetime.fromisoformat(first["ts"]).tzinfo is not None
    assert "job_id" not in second and "user_id" not in second and "exc" not in second


@pytest.mark.django_db
def test_a_line_logged_while_a_job_runs_names_the_job_and_its_owner(lines: Lines, job: Job) -> None:
    token = activate(JobReporter(job))
    try:
        logging.getLogger("x").warning("hi")
    finally:
        deactivate(token)
    logging.getLogger("x").warning("after")
    during, after = lines()
    assert during["message"] == "hi"
    assert during["job_id"] == str(job.pk) and during["user_id"] == job.owner_id
    assert "job_id" not in after


def test_a_traceback_goes_to_exc_never_into_the_message(lines: Lines) -> None:
    try:
        raise ValueError("secret internals")
    except ValueError:
        logging.getLogger("x").exception("Step failed")
    (line,) = lines()
    assert line["message"] == "Step failed"
    assert line["exc"].startswith("Traceback") and "ValueError: secret internals" in line["exc"]
    assert line["level"] == "ERROR"


def test_settings_configure_the_console_with_the_filter_and_the_chosen_format() -> None:
    from django.conf import settings

    # dictConfig's schema, as django-stubs types LOGGING (the project's own settings module
    # infers dict[str, object] from its literal).
    config: dict[str, Any] = settings.LOGGING
    console = config["handlers"]["console"]
    assert console["formatter"] in config["formatters"]
    assert console["filters"] == ["job_context"]
    assert config["formatters"]["json"]["()"] == "progress.jsonlog.JsonFormatter"
