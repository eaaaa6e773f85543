"""A requested statement, and the notices users get when one is ready."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Statement(models.Model):
    """One month's statement of a user; its job builds the file."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="statements"
    )
    month = models.CharField(max_length=7)
    # The progress job building it; kept when progress purges the job.
    job = models.ForeignKey("progress.Job", on_delete=models.SET_NULL, null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"Statement {self.month} of {self.owner_id}"


class Notification(models.Model):
    """What a user is told once a job of theirs has ended."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="statement_notices"
    )
    text = models.CharField(max_length=300)
    link = models.CharField(max_length=300, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return self.text
