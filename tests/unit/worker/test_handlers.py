"""What users and staff read of a failed job: a message for users, the details for staff."""

from __future__ import annotations

from billiard.exceptions import WorkerLostError

from progress.exceptions import JobError
from progress.protocol.states import WORKER_LOST_ERROR
from progress.worker.handlers import INTERNAL_ERROR, error_detail, error_message


def test_a_job_error_is_meant_for_users_and_shows_its_first_line() -> None:
    assert error_message(JobError("Disk full\nat /var/lib/x")) == "Disk full"
    assert error_message(JobError("  ")) == "The job failed."
    assert len(error_message(JobError("x" * 5000))) == 500


def test_any_other_exception_shows_neither_its_class_nor_its_text() -> None:
    exc = RuntimeError("password=hunter2 at postgres://db:5432")
    message = error_message(exc)
    assert message == INTERNAL_ERROR
    assert "RuntimeError" not in message and "hunter2" not in message
    # Staff read it in the admin.
    assert error_detail(exc) == "builtins.RuntimeError: password=hunter2 at postgres://db:5432"


def test_a_lost_worker_says_so_in_words() -> None:
    message = error_message(WorkerLostError("Worker exited prematurely: signal 9 (SIGKILL)."))
    assert message == WORKER_LOST_ERROR and "Error" not in message
