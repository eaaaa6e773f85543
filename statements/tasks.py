"""The task that builds a statement, reporting in steps through progress's public API."""

from __future__ import annotations

import csv
import io
import random
import time

from celery import shared_task
from django import forms

from progress import attach_file, bar, register, stages, track


class StatementForm(forms.Form):
    month = forms.RegexField(regex=r"^\d{4}-(0[1-9]|1[0-2])$", max_length=7)
    rows = forms.IntegerField(min_value=1, max_value=100_000, initial=200)
    seconds = forms.FloatField(min_value=0, max_value=120, initial=2)


def _fetch(rng: random.Random, rows: int, pause: float) -> list[tuple[int, float]]:
    """A helper that knows nothing of jobs: its bar fills the step it runs in."""
    lines = []
    with bar(total=rows, message="transactions") as counter:
        for number in range(1, rows + 1):
            lines.append((number, round(rng.uniform(-200, 500), 2)))
            counter.update()
            if pause:
                time.sleep(pause)
    return lines


# Only launched from the statements page (progress.launch), not offered on the dashboard.
@register(title="Monthly statement", form=StatementForm, public=False)
@shared_task(name="statements.build")
def build(month: str, rows: int = 200, seconds: float = 2) -> dict[str, object]:
    rng = random.Random(month)
    pause = seconds / (2 * rows)
    with stages("Fetching transactions", "Writing the statement", weights=[1, 1]) as steps:
        steps.next()
        lines = _fetch(rng, rows, pause)
        steps.next()
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["line", "amount"])
        balance = 0.0
        for number, amount in track(lines, message="lines"):
            balance += amount
            writer.writerow([number, amount])
            if pause:
                time.sleep(pause)
    url = attach_file(f"statement-{month}.csv", buffer.getvalue())
    return {"month": month, "rows": rows, "balance": round(balance, 2), "download": url}
