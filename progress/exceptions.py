"""Errors the app raises, each with what a user should be told. Any process."""

from __future__ import annotations


class ProgressError(Exception):
    """Base of the errors the service reports to users."""


class UnknownTask(ProgressError):
    """Raised when a launch names a task that is not registered."""

    def __init__(self, name: object) -> None:
        super().__init__(f"Unknown task: {name!r}.")


class InvalidParams(ProgressError):
    """Raised when a launch's params fail validation; `fields` maps names to messages."""

    def __init__(self, fields: dict[str, list[str]]) -> None:
        super().__init__("Invalid parameters.")
        self.fields = fields


class TooManyJobs(ProgressError):
    """Raised when a user already has as many unfinished jobs as allowed."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"You already have {limit} unfinished jobs; wait for one to end.")


class TooManyLaunches(ProgressError):
    """Raised when a user has launched as many jobs this minute as allowed."""

    def __init__(self, limit: int, retry_after: int) -> None:
        super().__init__(f"You may launch {limit} jobs a minute; try again in {retry_after}s.")
        self.retry_after = retry_after


class TooManySockets(ProgressError):
    """Raised when a user already holds as many sockets as PROGRESS["MAX_SOCKETS"] allows."""

    def __init__(self) -> None:
        super().__init__("Too many open tabs.")


class NotRetryable(ProgressError):
    """Raised when a retry names a job that cannot run again: one still running, one that
    succeeded, or a part of a group job."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)


class JobNotFound(ProgressError):
    """Raised for a job that does not exist or that the user may not see."""

    def __init__(self) -> None:
        super().__init__("Not found.")


class JobError(Exception):
    """Raise this in a task to fail its job with a message meant for the user."""
