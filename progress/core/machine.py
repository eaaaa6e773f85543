"""The job state machine: each change numbered, published, written and announced. Any process."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from datetime import datetime
from typing import Any

from celery import current_app, signature
from django.utils import timezone

from progress import signals
from progress.core.outage import REDIS_UNAVAILABLE
from progress.core.publisher import Publisher, get_publisher
from progress.core.reads import current_state
from progress.core.store import Latest
from progress.jsonlog import about
from progress.models import Job
from progress.protocol.messages import JOB_HEADERS
from progress.protocol.states import (
    FINAL_STATES,
    MAX_MESSAGE_LENGTH,
    JobState,
    State,
)

logger = logging.getLogger(__name__)


# Seconds a sync caller waits for a state change to be numbered and sent.
PUBLISH_TIMEOUT = 10.0


MAX_DETAIL_LENGTH = 2000


def _now_iso() -> str:
    return timezone.now().isoformat()


def commit_state(state: JobState, floor: int = 0, detail: str = "") -> int | None:
    """Publishes a change of state and writes it to the row; None if the job had already ended.

    The order of effects, which pages may rely on: the state is numbered in Redis, then
    written to the row, then job_started or job_finished receivers run; a final state's
    frame goes out only after that, so a page that reloads on it reads what they wrote.
    `detail` is what staff may read of a failure (in the admin), never sent to users.
    """
    publisher = get_publisher()
    fields: dict[str, Any] = {}
    numbered: Latest | None = None
    try:
        if state.is_final:
            numbered = publisher.number(state, floor, PUBLISH_TIMEOUT)
            mark = None if numbered is None else numbered.mark
        else:
            mark = publisher.publish(state, floor).result(PUBLISH_TIMEOUT)
    except Exception as exc:  # Redis down: the row records the state; the publisher retries.
        logger.warning(
            "Could not publish %s of job %s yet: %r",
            state.state,
            state.id,
            exc,
            extra=about(state.id, state.owner_id),
        )
        seq, deferred = floor + 1, True
    else:
        if mark is None:
            return None
        seq, deferred = mark.seq, False
        fields["epoch"] = mark.epoch
    fields.update(
        state=state.state.value,
        current=state.current,
        total=state.total,
        message=state.message[:MAX_MESSAGE_LENGTH],
        ts=state.ts,
        seq=seq,
    )
    if state.started:
        fields["started"] = datetime.fromisoformat(state.started)
    if state.is_final:
        fields.update(
            result=state.result,
            error=state.error or "",
            error_detail=detail[:MAX_DETAIL_LENGTH],
            finished=datetime.fromisoformat(state.finished or _now_iso()),
            log=_kept_log(state.id),
        )
    updated = Job.objects.filter(pk=state.id).exclude(state__in=FINAL_STATES).update(**fields)
    if updated:
        _announce(state, seq, fields.get("epoch", ""))
    if state.is_final:
        _send_final(publisher, state, floor, numbered, deferred)
        if updated and state.parent:
            part_ended(state.id, state.parent)
    return seq


def _send_final(
    publisher: Publisher, state: JobState, floor: int, numbered: Latest | None, deferred: bool
) -> None:
    """Runs once a final state is written and announced: its frame goes out, or, when Redis
    could not number it, the publisher numbers and sends it once Redis is back."""
    if deferred:
        publisher.publish(state, floor)
        return
    if numbered is None:
        return
    try:
        publisher.send(state, numbered).result(PUBLISH_TIMEOUT)
    except Exception as exc:  # Kept in Redis: the hubs' reconcile passes it on.
        logger.warning(
            "Could not send %s of job %s yet: %r",
            state.state,
            state.id,
            exc,
            extra=about(state.id, state.owner_id),
        )


def _kept_log(job_id: str) -> list[dict[str, Any]]:
    """The job's log lines Redis keeps, for its row once it ends; none if Redis is away."""
    try:
        publisher = get_publisher()
        lines = publisher.call(publisher.store.get_log(job_id))
    except REDIS_UNAVAILABLE as exc:
        logger.warning("Log of job %s unavailable from Redis: %r", job_id, exc, extra=about(job_id))
        return []
    return [json.loads(line) for line in lines]


def _announce(state: JobState, seq: int, epoch: str) -> None:
    """Runs once a change of state is written: sends job_started or job_finished."""
    if state.is_final:
        signal = signals.job_finished
    elif state.state is State.STARTED:
        signal = signals.job_started
    else:
        return
    if signal.has_listeners():
        signals.send(signal, state, seq, epoch, job=Job.objects.get(pk=state.id))


def write_progress(state: JobState) -> None:
    """Writes a running job's numbers to its row, at a low rate; Redis has every state."""
    Job.objects.filter(pk=state.id).exclude(state__in=FINAL_STATES).update(
        state=state.state.value,
        current=state.current,
        total=state.total,
        message=state.message[:MAX_MESSAGE_LENGTH],
        ts=state.ts,
    )


def record_final(
    job: Job,
    final: State,
    *,
    result: Any = None,
    error: str | None = None,
    detail: str = "",
    **figures: Any,
) -> int | None:
    """Ends a job from outside its task (cancel, revoke, a lost worker, queueing failure, the
    last part of a group); `figures` may set its current, total and message."""
    changes = {"result": result, "error": error, "finished": _now_iso(), **figures}
    return _record(job, final, detail, **changes)


def record_progress(job: Job, **figures: Any) -> int | None:
    """Moves a job on from outside its task: a group whose parts ended, before its callback."""
    return _record(job, State.PROGRESS, **figures)


def record_retry(job: Job, message: str) -> int | None:
    """Marks a job RETRY from outside its task: Celery re-queued it after its worker was lost."""
    return _record(job, State.RETRY, message=message)


def _record(job: Job, new: State, detail: str = "", **changes: Any) -> int | None:
    """Commits the job's newest state moved to `new`; None if the job had already ended."""
    state, seq = current_state(job)
    if state.is_final:
        return None
    moved = dataclasses.replace(state, state=new, eta=None, ts=time.time(), **changes)
    return commit_state(moved, floor=seq, detail=detail)


# Group jobs: the process that writes a part's final state settles the group when it
# was the last (see progress.worker.groups for how a group starts).


def part_ended(part_id: str, parent_id: str) -> None:
    """Runs once a part's final state is written, in whichever process wrote it: the one
    that finds every part ended settles the group."""
    publisher = get_publisher()
    try:
        last = publisher.call(publisher.store.settle_group(parent_id))
    except REDIS_UNAVAILABLE as exc:  # The sweep settles it once Redis is back.
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
        record_final(job, State.FAILURE, error=error, **figures)
        return
    if revoked:
        message = f"{revoked} of {n} parts were cancelled."
        record_final(job, State.REVOKED, message=message, **figures)
        return
    if not job.callback:
        record_final(
            job, State.SUCCESS, result=results, message=f"{n} of {n} parts done", **figures
        )
        return
    callback = signature(job.callback, app=current_app)
    record_progress(job, message=f"Combining {n} parts", **figures)
    try:
        callback.apply_async(args=(results,), task_id=str(job.pk), headers=JOB_HEADERS)
    except Exception:  # Any broker failure must end the job, not leave it running.
        logger.exception("Could not queue the callback of group %s", job.pk)
        error = "The last step could not be queued; try again later."
        record_final(job, State.FAILURE, error=error)


def cancel_parts(job: Job) -> None:
    """Runs when a group job is cancelled: its unfinished parts end REVOKED, and stop."""
    for part in job.parts.exclude(state__in=FINAL_STATES):
        record_final(part, State.REVOKED)
        current_app.control.revoke(str(part.pk), terminate=True, signal="SIGTERM")
