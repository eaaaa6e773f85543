"""The contract's demo task: count to `steps`, reporting each step."""

from __future__ import annotations

import logging
import time

from celery import Task, shared_task
from django import forms

from progress import JobError, register, run_group, set_progress

logger = logging.getLogger(__name__)


class CountForm(forms.Form):
    steps = forms.IntegerField(min_value=1, max_value=100_000, initial=20)
    delay = forms.FloatField(
        min_value=0, max_value=10, initial=0.2, help_text="Seconds between steps."
    )
    fail_at = forms.IntegerField(
        required=False, min_value=1, label="Fail at", help_text="Raise at this step (optional)."
    )


@register(title="Count", form=CountForm, description="Counts to N, one step at a time.")
@shared_task(bind=True, name="demo.count")
def count(self: Task, steps: int, delay: float = 0.2, fail_at: int | None = None) -> dict[str, int]:
    every = max(1, steps // 10)
    for i in range(1, steps + 1):
        if delay:
            time.sleep(delay)
        if fail_at is not None and i == fail_at:
            logger.warning("Failing at step %d, as asked", i)
            raise JobError(f"Failed at step {i} of {steps}, as asked.")
        set_progress(i, steps, f"step {i} of {steps}")
        if i % every == 0:
            # A tenth of the way each time: shown in the job page's log.
            logger.info("Counted %d of %d", i, steps)
    return {"counted": steps}


class SizesField(forms.Field):
    """Part sizes typed as "10, 20, 30", or the list a job's params keep (a retry sends it)."""

    def to_python(self, value: object) -> list[int]:
        if isinstance(value, list):
            items = value
        elif isinstance(value, str) and value.strip():
            items = value.split(",")
        else:
            raise forms.ValidationError("Give the steps of each part.")
        try:
            sizes = [int(str(item).strip()) for item in items]
        except ValueError:
            raise forms.ValidationError("Give whole numbers separated by commas.") from None
        if not 1 <= len(sizes) <= 20:
            raise forms.ValidationError("Give between 1 and 20 parts.")
        if any(not 1 <= size <= 100_000 for size in sizes):
            raise forms.ValidationError("Each part has 1 to 100000 steps.")
        return sizes


class BatchForm(forms.Form):
    sizes = SizesField(
        initial="10, 20, 30",
        widget=forms.TextInput,
        help_text="Steps of each part, comma-separated; parts count side by side.",
    )
    delay = forms.FloatField(
        min_value=0, max_value=10, initial=0.2, help_text="Seconds between steps."
    )
    fail_part = forms.IntegerField(
        required=False,
        min_value=1,
        label="Fail part",
        help_text="This part fails half-way (optional).",
    )

    def clean(self) -> dict[str, object]:
        cleaned = super().clean() or {}
        fail_part, sizes = cleaned.get("fail_part"), cleaned.get("sizes")
        if isinstance(fail_part, int) and isinstance(sizes, list) and fail_part > len(sizes):
            self.add_error("fail_part", f"There are only {len(sizes)} parts.")
        return cleaned


@register(
    title="Count in parallel",
    form=BatchForm,
    description="A Celery group of counts, then a chord callback that adds them up.",
)
@shared_task(name="demo.batch")
def batch(sizes: list[int], delay: float = 0.2, fail_part: int | None = None) -> None:
    parts = [
        count.s(steps=size, delay=delay, fail_at=max(1, size // 2) if index == fail_part else None)
        for index, size in enumerate(sizes, 1)
    ]
    # Declared units: the whole bar is weighted by steps from the start, not by part count.
    run_group(parts, units=sizes, then=add_up.s())


@shared_task(name="demo.add_up")
def add_up(results: list[dict[str, int]]) -> dict[str, int]:
    """The chord callback of demo.batch: runs as the group job once every part succeeded."""
    return {"counted": sum(result["counted"] for result in results), "parts": len(results)}
