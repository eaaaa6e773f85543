"""The Job: one launched task, its owner, params and last stored state. Any process."""

from __future__ import annotations

import uuid
from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone

from progress.protocol.states import FINAL_STATES, MAX_MESSAGE_LENGTH, JobState, State


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


class JobQuerySet(models.QuerySet["Job"]):
    def unfinished(self) -> JobQuerySet:
        return self.exclude(state__in=FINAL_STATES)

    def finished(self) -> JobQuerySet:
        return self.filter(state__in=FINAL_STATES)


class Job(models.Model):
    """A job's id is its Celery task id. Redis holds the newest state; this row follows it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="progress_jobs"
    )
    task = models.CharField(max_length=200)
    params = models.JSONField(default=dict, blank=True)
    state = models.CharField(
        max_length=16, choices=[(s.value, s.value) for s in State], default=State.PENDING
    )
    current = models.FloatField(default=0)
    total = models.FloatField(null=True, blank=True)
    message = models.CharField(max_length=MAX_MESSAGE_LENGTH, blank=True)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    # What staff may read of a failure (the exception and its message); users see `error`.
    error_detail = models.TextField(blank=True)
    result_file = models.FileField(upload_to="progress/", blank=True)
    # The log lines kept once the job ended ({"n", "ts", "level", "text"} dicts, as `log`
    # frames carry them); while it runs, Redis has them.
    log = models.JSONField(default=list, blank=True)
    # A part of a group job (progress.worker.groups): its parent, place and declared units of work.
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="parts"
    )
    part = models.PositiveIntegerField(null=True, blank=True)
    units = models.FloatField(null=True, blank=True)
    # On a group job: the chord callback (a Celery signature) run once every part succeeded.
    callback = models.JSONField(null=True, blank=True)
    # The failed or revoked job this one re-launched, with the same params.
    retry_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="retries"
    )
    seq = models.PositiveIntegerField(default=0)
    # The epoch of the numbering `seq` belongs to (the contract's `epoch`): Redis's, as of
    # the last change of state written here.
    epoch = models.CharField(max_length=32, blank=True, default="")
    ts = models.FloatField(default=0)
    created = models.DateTimeField(default=timezone.now, db_index=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["-created"]
        indexes = [
            models.Index(fields=["owner", "-created"], name="progress_job_owner_created"),
            models.Index(fields=["owner", "state"], name="progress_job_owner_state"),
        ]

    def __str__(self) -> str:
        return f"{self.task} {self.id} ({self.state})"

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES

    def to_state(self) -> JobState:
        """The row as a JobState, for when Redis no longer has anything newer."""
        return JobState(
            id=str(self.id),
            owner_id=self.owner_id,
            task=self.task,
            state=State(self.state),
            current=self.current,
            total=self.total,
            message=self.message,
            ts=self.ts or self.created.timestamp(),
            result=self.result,
            error=self.error or None,
            created=self.created.isoformat(),
            started=_iso(self.started),
            finished=_iso(self.finished),
            parent=str(self.parent_id) if self.parent_id else None,
            part=self.part,
            retry_of=str(self.retry_of_id) if self.retry_of_id else None,
        )

    def to_json(self) -> str:
        return self.to_state().to_json(self.seq, self.epoch)
