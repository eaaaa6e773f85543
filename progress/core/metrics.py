"""Every Prometheus metric, defined once, and what GET /metrics/ serves. Any process.

Each process has its own registry: each web process serves its own figures
at /metrics/, so scrape every web process (not a load balancer in front of
them) and sum in Prometheus. Counters moved in Celery workers (states and log
batches their publishers sent, jobs their main process ended because a child
died) are not served by any web process; a web process counts the ones it
moved itself: the states it published (cancels, the sweep's ends), and the
lost jobs its sweep ended. `progress_jobs` reads the database at scrape time,
so every web process serves the same figures for it.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from progress.protocol.frames import EventType
from progress.protocol.states import State

# A `_created` series beside each counter and histogram doubles what Prometheus stores,
# for a start time it knows from process_start_time_seconds.
disable_created_metrics()

OPEN_SOCKETS = Gauge(
    "progress_open_sockets",
    "WebSockets open in this process that count against PROGRESS['MAX_SOCKETS'].",
)

MESSAGES_PUBLISHED = Counter(
    "progress_messages_published_total",
    "Messages this process's publisher sent to the channel layer: job states and log batches.",
    ["kind"],
)
# Children bound once: the publisher's loop moves them for each message.
PUBLISHED_JOB = MESSAGES_PUBLISHED.labels(kind=EventType.JOB.value)
PUBLISHED_LOG = MESSAGES_PUBLISHED.labels(kind=EventType.LOG.value)

MESSAGES_DELIVERED = Counter(
    "progress_messages_delivered_total",
    "Job and log frames this process's hub wrote to WebSockets.",
)

PUBLISH_TO_SEND = Histogram(
    "progress_publish_to_send_seconds",
    "Seconds from a job state's ts (the clock of the process that made it) to its hub "
    "handing it to this process's sockets.",
    # Most states arrive within milliseconds; the long tail is a stalled layer or Redis.
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)

HUB_RECOVERIES = Counter(
    "progress_hub_recoveries_total",
    "Times this process's hub re-joined its groups and resent states: Redis lost its data "
    "or a receive failed.",
)

HUB_RECONCILED = Counter(
    "progress_hub_reconciled_total",
    "Job states the channel layer never delivered that this process's hub found in Redis "
    "and passed on (its reconcile chore).",
)

WORKER_LOST = Counter(
    "progress_worker_lost_total",
    "Jobs this process ended FAILURE because their worker was lost.",
)

JOBS_NAME = "progress_jobs"
JOBS_HELP = "Jobs in the database, by state."


class JobsCollector(Collector):
    """`progress_jobs`: one GROUP BY state query per scrape, never at import."""

    def describe(self) -> Iterator[Metric]:
        """Runs when the collector is registered: names its metric without a query."""
        yield GaugeMetricFamily(JOBS_NAME, JOBS_HELP, labels=["state"])

    def collect(self) -> Iterator[Metric]:
        """Runs at each scrape of the registry, in the thread that renders it."""
        # Imported here: the registry is built when this module loads, maybe before Django is.
        from django.db.models import Count

        from progress.models import Job

        counts = dict.fromkeys((state.value for state in State), 0)
        for row in Job.objects.order_by().values("state").annotate(n=Count("pk")):
            counts[row["state"]] = row["n"]
        family = GaugeMetricFamily(JOBS_NAME, JOBS_HELP, labels=["state"])
        for state, count in counts.items():
            family.add_metric([state], count)
        yield family


REGISTRY.register(JobsCollector())


def exposition() -> tuple[bytes, str]:
    """Runs for each authorized GET /metrics/: this process's figures and their content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
