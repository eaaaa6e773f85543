"""Result files kept with a job. Any process (a task writes them, the web serves them)."""

from __future__ import annotations

from django.core.files.base import ContentFile
from django.urls import reverse
from django.utils.text import get_valid_filename

from progress.models import Job


def attach_file(job_id: str, filename: str, content: bytes | str) -> str:
    """Keeps a result file with the job; returns the URL only its owner can download it from."""
    job = Job.objects.get(pk=job_id)
    data = content.encode() if isinstance(content, str) else content
    job.result_file.save(get_valid_filename(filename), ContentFile(data), save=False)
    Job.objects.filter(pk=job.pk).update(result_file=job.result_file.name)
    return reverse("progress:download", args=[job.pk])
