"""Tasks that exist only in test stacks, for what the demo tasks cannot show."""

from __future__ import annotations

import logging
import time

from celery import shared_task
from django import forms

from progress import register, set_progress

logger = logging.getLogger(__name__)


class EchoForm(forms.Form):
    text = forms.CharField(max_length=500)
    steps = forms.IntegerField(min_value=1, max_value=1000, initial=3)
    delay = forms.FloatField(min_value=0, max_value=10, initial=0.1)


@register(title="Echo (tests)", form=EchoForm)
@shared_task(name="tests.echo")
def echo(text: str, steps: int = 3, delay: float = 0.1) -> dict[str, str]:
    """Reports `text` as its message and returns it as its result: data a user controls."""
    for step in range(1, steps + 1):
        time.sleep(delay)
        set_progress(step, steps, text)
        # Into the job's log as well, through the standard logging module.
        logger.info("step %d of %d: %s", step, steps, text)
    return {"note": text}


class TallyForm(forms.Form):
    steps = forms.IntegerField(min_value=1, max_value=1000, initial=20)
    delay = forms.FloatField(min_value=0, max_value=10, initial=0.2)


@register(title="Tally (tests)", form=TallyForm)
@shared_task(name="tests.tally")
def tally(steps: int = 20, delay: float = 0.2) -> dict[str, int]:
    """Counts what it finds without knowing how much there is: progress with no total."""
    for found in range(1, steps + 1):
        time.sleep(delay)
        set_progress(found, None, f"Found {found} so far")
    return {"found": steps}


# A task exactly as celery-progress's README writes it; only the import differs
# (from celery_progress.backend import ProgressRecorder).
from progress.compat import ProgressRecorder  # noqa: E402


@shared_task(bind=True)
def my_task(self, seconds):
    progress_recorder = ProgressRecorder(self)
    result = 0
    for i in range(seconds):
        time.sleep(1)
        result += i
        progress_recorder.set_progress(i + 1, seconds, description=f"On iteration {i}")
    return result


class SecondsForm(forms.Form):
    seconds = forms.IntegerField(min_value=1, max_value=10)


# A registry entry for a task defined elsewhere: its body is untouched.
register(title="celery-progress style (tests)", form=SecondsForm)(my_task)
