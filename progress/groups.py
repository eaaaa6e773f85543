"""Group jobs: a job whose work is a Celery group of parts, with one bar for the whole.

A task calls run_group() with the parts' signatures. Each part is a job of its
own (a row with `parent`), with its own bar. Its states also go into the
group's sum in Redis, one O(1) script per state, weighted by units of work:
a part at 5 of 10 beside a finished part of 10 is 15 of 20, 75%. The process
that ends the last part settles the group: FAILURE if a part failed, REVOKED
if one was cancelled, else the chord callback (`then`), run as the group job
itself, or SUCCESS with the parts' results in order.

Celery's own chord needs a result backend, and polls it or counts in it; this
counts in the Redis the service already has, the way its Redis backend does.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any

from celery import current_app, group, signature
from celery.canvas import Signature
from django.db import transaction
from redis.exceptions import RedisError

from . import reporter as reporters
from . import services
from .events import FINAL_STATES, State
from .exceptions import ProgressError
from .models import Job
from .publisher import get_publisher

logger = logging.getLogger(__name__)

# What asking Redis may raise while it is away.
_STORE_ERRORS = (RedisError, OSError, TimeoutError)


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
        services.commit_state(row.to_state())
    known = None if None in declared else float(sum(size or 0 for size in declared))
    reporter.begin_group(len(rows), known)
    ids = [str(row.pk) for row in rows]
    calls = [sig.clone(task_id=part_id) for sig, part_id in zip(signatures, ids, strict=True)]
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


def part_ended(part_id: str, parent_id: str) -> None:
    """Runs once a part's final state is written, in whichever process wrote it: the one
    that finds every part ended settles the group."""
    publisher = get_publisher()
    try:
        last = publisher.call(publisher.store.settle_group(parent_id))
    except _STORE_ERRORS as exc:  # The sweep settles it once Redis is back.
        logger.warning("Could not check group %s after part %s: %r", parent_id, part_id, exc)
        return
    if last:
        settle(parent_id)


def settle(parent_id: str) -> None:
    """Runs once per group, when its last part ended: ends the group job, or queues its
    chord callback to run as the group job. Reads every part, once."""
    job = Job.objects.get(pk=parent_id)
    fields = ("state", "current", "total", "result", "error")
    parts = list(job.parts.order_by("part").values_list(*fields))
    current, totals, results, failed, revoked = 0.0, [], [], [], 0
    for state, done, total, result, error in parts:
        # A part that succeeded did all its units, whatever it last reported.
        current += float(total if state == State.SUCCESS and total else done)
        totals.append(total)
        results.append(result)
        if state == State.FAILURE:
            failed.append(error)
        revoked += state == State.REVOKED
    total = None if None in totals else float(sum(totals))
    figures: dict[str, Any] = {"current": current, "total": total}
    n = len(parts)
    if failed:
        error = f"{len(failed)} of {n} parts failed. The first said: {failed[0]}"
        services.record_final(job, State.FAILURE, error=error, **figures)
        return
    if revoked:
        message = f"{revoked} of {n} parts were cancelled."
        services.record_final(job, State.REVOKED, message=message, **figures)
        return
    if not job.callback:
        services.record_final(
            job, State.SUCCESS, result=results, message=f"{n} of {n} parts done", **figures
        )
        return
    callback = signature(job.callback, app=current_app)
    services.record_progress(job, message=f"Combining {n} parts", **figures)
    try:
        callback.apply_async(args=(results,), task_id=str(job.pk))
    except Exception:  # Any broker failure must end the job, not leave it running.
        logger.exception("Could not queue the callback of group %s", job.pk)
        error = "The last step could not be queued; try again later."
        services.record_final(job, State.FAILURE, error=error)


def cancel_parts(job: Job) -> None:
    """Runs when a group job is cancelled: its unfinished parts end REVOKED, and stop."""
    for part in job.parts.exclude(state__in=FINAL_STATES):
        services.record_final(part, State.REVOKED)
        current_app.control.revoke(str(part.pk), terminate=True, signal="SIGTERM")


def settle_stalled() -> list[str]:
    """Settles the groups whose parts all ended without anyone settling them (Redis was away
    when the last one ended). Runs with the sweep for lost jobs."""
    running = [State.STARTED.value, State.PROGRESS.value]
    stalled = (
        Job.objects.filter(state__in=running, parts__isnull=False)
        .exclude(parts__state__in=[s.value for s in State if not s.is_final])
        .distinct()
    )
    settled: list[str] = []
    publisher = get_publisher()
    for job_id in stalled.values_list("pk", flat=True)[: services.SWEEP_BATCH]:
        try:
            last = publisher.call(publisher.store.settle_group(str(job_id)))
        except _STORE_ERRORS as exc:  # The next sweep tries again.
            logger.warning("Could not check stalled group %s: %r", job_id, exc)
            return settled
        if last:
            settle(str(job_id))
            settled.append(str(job_id))
    return settled
