"""Every Prometheus metric, defined once, and what GET /metrics/ serves. Any process.

Each process has its own registry: each web process serves its own figures
at /metrics/, so scrape every web process (not a load balancer in front of
them) and sum in Prometheus. Counters moved in Celery workers (states and log
batches their publishers sent, jobs their main process ended because a child
died) are not served by any web process; a web process counts the ones it
moved itself: the states it published (cancels, the sweep's ends), and the
lost jobs its sweep ended. `progress_jobs` reads the database at scrape time,
so every web process serves the same figures for it.

prometheus_client comes with the [metrics] extra. Without it each metric is a stand-in
that counts nothing, GET /metrics/ answers 404, and check progress.W011 says so when
PROGRESS["METRICS_TOKEN"] asks for the endpoint.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

from progress.protocol.frames import EventType
from progress.protocol.states import State

if TYPE_CHECKING:
    from prometheus_client import Counter, Gauge, Histogram
    from prometheus_client.core import Metric


def _prometheus() -> ModuleType | None:
    """prometheus_client, which the [metrics] extra installs; None without it."""
    try:
        return importlib.import_module("prometheus_client")
    except ImportError:
        return None


_client = _prometheus()
# Whether this process counts and GET /metrics/ serves; without prometheus_client every
# metric below is a stand-in whose calls do nothing, and the endpoint answers 404.
AVAILABLE = _client is not None


class _Unmeasured:
    """A metric while prometheus_client is not installed: each call costs one no-op."""

    def labels(self, *values: str, **labels: str) -> _Unmeasured:
        return self

    def inc(self, amount: float = 1) -> None:
        """Counts nothing."""

    def dec(self, amount: float = 1) -> None:
        """Counts nothing."""

    def observe(self, amount: float) -> None:
        """Records nothing."""


def _metric(
    kind: str, name: str, documentation: str, labels: Sequence[str] = (), **options: Any
) -> Any:
    if _client is None:
        return _Unmeasured()
    return getattr(_client, kind)(name, documentation, labels, **options)


if _client is not None:
    # A `_created` series beside each counter and histogram doubles what Prometheus stores,
    # for a start time it knows from process_start_time_seconds.
    _client.disable_created_metrics()

OPEN_SOCKETS: Gauge = _metric(
    "Gauge",
    "progress_open_sockets",
    "WebSockets open in this process that count against PROGRESS['MAX_SOCKETS'].",
)

MESSAGES_PUBLISHED: Counter = _metric(
    "Counter",
    "progress_messages_published_total",
    "Messages this process's publisher sent to the channel layer: job states and log batches.",
    ["kind"],
)
# Children bound once: the publisher's loop moves them for each message.
PUBLISHED_JOB = MESSAGES_PUBLISHED.labels(kind=EventType.JOB.value)
PUBLISHED_LOG = MESSAGES_PUBLISHED.labels(kind=EventType.LOG.value)

MESSAGES_DELIVERED: Counter = _metric(
    "Counter",
    "progress_messages_delivered_total",
    "Job and log frames this process's hub wrote to WebSockets.",
)

PUBLISH_TO_SEND: Histogram = _metric(
    "Histogram",
    "progress_publish_to_send_seconds",
    "Seconds from a job state's ts (the clock of the process that made it) to its hub "
    "handing it to this process's sockets.",
    # Most states arrive within milliseconds; the long tail is a stalled layer or Redis.
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)

HUB_RECOVERIES: Counter = _metric(
    "Counter",
    "progress_hub_recoveries_total",
    "Times this process's hub re-joined its groups and resent states: Redis lost its data "
    "or a receive failed.",
)

HUB_RECONCILED: Counter = _metric(
    "Counter",
    "progress_hub_reconciled_total",
    "Job states the channel layer never delivered that this process's hub found in Redis "
    "and passed on (its reconcile chore).",
)

WORKER_LOST: Counter = _metric(
    "Counter",
    "progress_worker_lost_total",
    "Jobs this process ended FAILURE because their worker was lost.",
)

JOBS_NAME = "progress_jobs"
JOBS_HELP = "Jobs in the database, by state."


class JobsCollector:
    """`progress_jobs`: one GROUP BY state query per scrape, never at import."""

    def describe(self) -> Iterator[Metric]:
        """Runs when the collector is registered: names its metric without a query."""
        yield self._family()

    def collect(self) -> Iterator[Metric]:
        """Runs at each scrape of the registry, in the thread that renders it."""
        # Imported here: the registry is built when this module loads, maybe before Django is.
        from django.db.models import Count

        from progress.models import Job

        counts = dict.fromkeys((state.value for state in State), 0)
        for row in Job.objects.order_by().values("state").annotate(n=Count("pk")):
            counts[row["state"]] = row["n"]
        family = self._family()
        for state, count in counts.items():
            family.add_metric([state], count)
        yield family

    @staticmethod
    def _family() -> Any:
        from prometheus_client.core import GaugeMetricFamily

        return GaugeMetricFamily(JOBS_NAME, JOBS_HELP, labels=["state"])


if _client is not None:
    _client.REGISTRY.register(JobsCollector())


def exposition() -> tuple[bytes, str]:
    """Runs for each authorized GET /metrics/: this process's figures and their content type.
    Only while AVAILABLE; the view answers 404 otherwise."""
    if _client is None:
        raise RuntimeError(
            "prometheus_client is not installed: pip install 'django-live-progress[metrics]'."
        )
    return cast(bytes, _client.generate_latest(_client.REGISTRY)), str(_client.CONTENT_TYPE_LATEST)
