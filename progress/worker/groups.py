"""run_group(): a job's task runs a Celery group of parts as one bar. Worker processes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from typing import Any

from celery import group
from celery.canvas import Signature
from django.db import transaction

from progress.core import machine
from progress.core.publisher import get_publisher
from progress.exceptions import ProgressError
from progress.models import Job
from progress.protocol.messages import JOB_HEADERS
from progress.worker import reporter as reporters


def run_group(
    parts: Iterable[Signature],
    *,
    units: Sequence[float | None] | None = None,
    then: Signature | None = None,
) -> list[str]:
    """Runs `parts` as the parts of the current job, and returns their job ids.

    Call it from a job's task, as its last step: the job then ends when its
    parts have, with the result of `then` (a chord callback given the parts'
    results, in order) or with that list. `units` declares each part's units
    of work (its total) so that the whole bar is right before parts start;
    a part declared None counts once it reports a total.
    """
    reporter = reporters.current_reporter()
    if reporter is None:
        raise ProgressError("run_group() runs inside the task of a job.")
    signatures = [_checked(part) for part in parts]
    if not signatures:
        raise ProgressError("run_group() needs at least one part.")
    declared = list(units) if units is not None else [None] * len(signatures)
    if len(declared) != len(signatures):
        raise ProgressError(f"{len(signatures)} parts but {len(declared)} units.")
    job = Job.objects.get(pk=reporter.state.id)
    if then is not None:
        job.callback = json.loads(json.dumps(dict(_checked(then))))
        job.save(update_fields=["callback"])
    now = time.time()
    rows = Job.objects.bulk_create(
        Job(
            owner_id=job.owner_id,
            task=sig.task,
            params=_params(sig),
            parent=job,
            part=index,
            units=None if size is None else float(size),
            total=size,
            ts=now,
        )
        for index, (sig, size) in enumerate(zip(signatures, declared, strict=True))
    )
    publisher = get_publisher()
    publisher.call(publisher.store.start_group(str(job.pk), [(str(r.pk), r.units) for r in rows]))
    for row in rows:
        machine.commit_state(row.to_state())
    known = None if None in declared else float(sum(size or 0 for size in declared))
    reporter.begin_group(len(rows), known)
    ids = [str(row.pk) for row in rows]
    calls = [
        sig.clone(task_id=part_id, headers=JOB_HEADERS)
        for sig, part_id in zip(signatures, ids, strict=True)
    ]
    # Once the rows are committed, so every part's worker finds its row.
    transaction.on_commit(lambda: group(calls).apply_async())
    return ids


def _checked(part: object) -> Signature:
    if not isinstance(part, Signature):
        raise ProgressError(f"A part must be a Celery signature (task.s(...)), not {part!r}.")
    try:
        json.dumps(dict(part))
    except (TypeError, ValueError) as exc:
        raise ProgressError(f"The arguments of {part.task} are not JSON: {exc}") from exc
    return part


def _params(sig: Signature) -> dict[str, Any]:
    params = dict(sig.kwargs)
    if sig.args:
        params["args"] = list(sig.args)
    return params
