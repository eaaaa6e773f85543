"""The fan-out scenario's records: one run's figures, and how the clients' records become them."""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import math
from collections.abc import Iterable
from typing import Any

from bench.harness import CpuMarks, fmt, log, median, percentile
from bench.stack import error_lines
from devstack.processes import Service

PARTS = ("floor", "redis", "pubsub", "polling", "users")
LABELS = {
    "floor": "floor",
    "redis": "ours (redis)",
    "pubsub": "ours (pubsub)",
    "polling": "polling",
}
HANDSHAKES = 50  # Sockets opened at a time, over all client processes.
LOCKED = "database is locked"


@dataclasses.dataclass
class Run:
    """One configuration (floor, redis, pubsub, polling) x one scenario (M=10, ..., users)."""

    part: str
    scenario: str
    watchers: int
    jobs: int = 1
    opened: int = 0
    open_errors: list[str] = dataclasses.field(default_factory=list)
    extensions: str = ""
    published: list[int] = dataclasses.field(default_factory=list)  # per job
    unseen: int = 0  # seqs up to the final one that no client saw, over all jobs
    shares: list[float] = dataclasses.field(default_factory=list)  # delivered/published per client
    finals: int = 0
    disorder: int = 0  # frames whose seq was not above the last one the client had
    latencies_ms: list[float] = dataclasses.field(default_factory=list)
    delivered: int = 0
    payload_bytes: int = 0
    requests: int = 0
    request_errors: int = 0
    cpu: dict[str, float] = dataclasses.field(default_factory=dict)
    client_cpu_s: float = 0.0
    client_peak: float = 0.0  # the busiest client process's share of one core
    lag_p99_ms: float = math.nan
    other_cpu_s: float = 0.0
    window_s: float = 0.0
    launch_s: float = 0.0
    procs: int = 0  # client processes
    client_idle_s: float = 0.0  # what the clients would have spent idle over the window
    closed_early: list[str] = dataclasses.field(default_factory=list)
    errors: int = 0
    locked: int = 0
    notes: list[str] = dataclasses.field(default_factory=list)
    failure: str | None = None

    @property
    def label(self) -> str:
        return LABELS[self.part]

    @property
    def cpu_s(self) -> float:
        return sum(self.cpu.values())

    @property
    def cpu_per_1000(self) -> float:
        return self.cpu_s * 1000 / self.delivered if self.delivered else math.nan

    @property
    def front_us(self) -> float:
        """CPU µs of the process that writes to the sockets (web, or the floor's forwarder)
        per update delivered."""
        front = self.cpu.get("web", self.cpu.get("forwarder", math.nan))
        return front * 1e6 / self.delivered if self.delivered else math.nan

    @property
    def burst_ms(self) -> float:
        """Client CPU to read one state on all the sockets of one client process: a share of
        the latency at large M is this queue inside the client, for any server."""
        if not self.delivered or not self.procs or self.part == "polling":
            return math.nan
        busy = max(0.0, self.client_cpu_s - self.client_idle_s)
        return busy / self.delivered * self.watchers / self.procs * 1000

    @property
    def noise(self) -> float:
        """Cores that other processes on the machine kept busy during the window, on average."""
        return self.other_cpu_s / self.window_s if self.window_s else math.nan

    @property
    def complete(self) -> bool:
        """Every client got every published state and the final one."""
        return (
            self.failure is None
            and self.opened == self.watchers
            and self.finals == self.watchers
            and bool(self.shares)
            and min(self.shares) >= 1.0
        )

    def charge(
        self, begin: CpuMarks, end: CpuMarks, servers: Iterable[str], own_is_client: bool
    ) -> None:
        """Fills the CPU figures with what was spent from `begin` to `end`: the trees named
        in `servers` are the server's, the others (and this process if `own_is_client`) the
        clients'."""
        spent = begin.spent(end)
        self.window_s = end.at - begin.at
        self.cpu = {name: spent[name] for name in servers}
        clients = [seconds for name, seconds in spent.items() if name not in self.cpu]
        if own_is_client:
            clients.append(begin.own_spent(end))
        self.client_cpu_s = sum(clients)
        self.client_peak = max(clients, default=0.0) / self.window_s if self.window_s else math.nan
        self.other_cpu_s = begin.others(end)


def score(
    run: Run,
    sockets: list[dict[str, Any]],
    watch: list[str],
    finals: dict[str, int],
    exact: dict[str, int] | None = None,
) -> None:
    """Fills the delivery figures. `watch[i]` is the job socket i watches; `finals` each job's
    final seq (from its final row); `exact` the published counts when they are known (floor).

    Without `exact`, a job's published states are the distinct seqs of it that any client or
    its final row shows.
    """
    seen: dict[str, set[int]] = {job: set() for job in watch}
    for record, job in zip(sockets, watch, strict=True):
        seen[job].update(record["jobs"].get(job, {}).get("seqs", []))
    published: dict[str, int] = {}
    for job, seqs in seen.items():
        final = finals.get(job, 0)
        published[job] = exact[job] if exact else len(seqs | ({final} if final else set()))
        run.unseen += len(set(range(1, (exact[job] if exact else final) + 1)) - seqs)
    run.published = [published[job] for job in dict.fromkeys(watch)]
    for record, job in zip(sockets, watch, strict=True):
        entry = record["jobs"].get(job)
        if record["closed"]:
            run.closed_early.append(record["closed"])
        for other in record["jobs"]:
            if other != job:
                run.notes.append(f"a socket got frames of a job it does not watch ({other})")
        for kind, count in record["other"].items():
            run.notes.append(f"clients got {kind!r} frames besides the snapshot (e.g. {count})")
        if entry is None:
            run.shares.append(0.0)
            continue
        seqs = entry["seqs"]
        run.shares.append(len(set(seqs)) / published[job] if published[job] else 0.0)
        run.disorder += sum(1 for a, b in itertools.pairwise(seqs) if b <= a)
        run.finals += bool(entry["final"])
        run.latencies_ms.extend(entry["lat"])
        run.delivered += len(seqs)
        run.payload_bytes += entry["bytes"]


def note_coalescing(run: Run, args: argparse.Namespace) -> None:
    """Says so when ours published far fewer states than its documented throttle allows.

    docs/protocol.md: progress goes out at most once per THROTTLE per job, the last of a
    burst always; with PENDING, STARTED and the final state that is about S / (R x T) + 3.
    """
    if run.failure or not run.published:
        return
    expected = args.states * min(1.0, 1 / (args.rate * args.throttle)) + 3
    got = median([float(n) for n in run.published])
    if got < 0.8 * expected:
        run.notes.append(
            f"ours published a median of {got:.0f} states per job, where one progress state "
            f"per {args.throttle:g} s (THROTTLE) gives about {expected:.0f}: the rest were "
            "coalesced before they got a seq"
        )


def log_offsets(services: list[Service]) -> dict[str, int]:
    """Where each service's log ends now, for count_log_lines() to count what follows."""
    return {service.name: len(service.output()) for service in services}


def count_log_lines(services: list[Service], offsets: dict[str, int], run: Run) -> None:
    for service in services:
        since = offsets.get(service.name, 0)
        run.errors += len(error_lines(service, since))
        run.locked += service.output()[since:].count(LOCKED)


def log_run(run: Run) -> None:
    if run.failure:
        log(f"{run.label} {run.scenario}: FAILED: {run.failure}")
        return
    log(
        f"{run.label} {run.scenario}: p50 {fmt(percentile(run.latencies_ms, 50))} ms, "
        f"p99 {fmt(percentile(run.latencies_ms, 99))} ms; final on {run.finals}/{run.watchers}; "
        f"delivered/published min {fmt(100 * min(run.shares, default=math.nan))}%; "
        f"server CPU {run.cpu_s:.2f} s; client busiest {100 * run.client_peak:.0f}% of a core"
    )
