"""A realistic job: build a CSV report of N rows that its owner downloads when done."""

from __future__ import annotations

import csv
import io
import random
import time

from celery import Task, shared_task
from django import forms

from progress import attach_file, register, track

REGIONS = ("North", "South", "East", "West")
PRODUCTS = ("Widget", "Gadget", "Gizmo", "Doohickey")


class ReportForm(forms.Form):
    rows = forms.IntegerField(min_value=1, max_value=1_000_000, initial=5000)
    seconds = forms.FloatField(
        min_value=0, max_value=600, initial=5, help_text="Roughly how long the report takes."
    )


@register(
    title="Sales report (CSV)",
    form=ReportForm,
    description="Builds a CSV of N sales rows you can download when it is done.",
)
# Safe to run again: the same job id seeds the same rows. If the worker child
# running it dies, Celery queues it again (twice at most) instead of failing it.
@shared_task(
    bind=True,
    name="reports.sales_csv",
    retry_on_worker_lost=True,
    max_retries=2,
    default_retry_delay=1,
)
def sales_csv(self: Task, rows: int, seconds: float = 5) -> dict[str, object]:
    rng = random.Random(self.request.id)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["order", "region", "product", "quantity", "amount"])
    pause = seconds / rows
    total = 0.0
    for order in track(range(1, rows + 1), message="Writing rows"):
        quantity = rng.randint(1, 20)
        amount = round(quantity * rng.uniform(2, 40), 2)
        total += amount
        writer.writerow([order, rng.choice(REGIONS), rng.choice(PRODUCTS), quantity, amount])
        if pause:
            time.sleep(pause)
    url = attach_file(f"sales-{rows}-rows.csv", buffer.getvalue())
    return {"rows": rows, "total": round(total, 2), "download": url}
