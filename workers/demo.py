"""The contract's demo task: count to `steps`, reporting each step."""

from __future__ import annotations

import logging
import time

from celery import Task, shared_task
from django import forms

from progress import JobError, register, set_progress

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
