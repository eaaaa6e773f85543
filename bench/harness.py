"""What every bench shares: progress lines, /proc readings, CPU windows, tables, signals, the loop.

Nothing here knows Django or the service: bench/stack.py starts those.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import math
import os
import platform
import re
import resource
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from devstack.processes import ROOT

T = TypeVar("T")

CLK_TCK = os.sysconf("SC_CLK_TCK")
STARTED = time.monotonic()
# An error line in a server's log: uvicorn's "ERROR:", Django's "<date> <time> ERROR name:",
# Celery's "[...: ERROR/", or the same at CRITICAL.
ERROR_LINE = re.compile(
    r"^(?:(?:ERROR|CRITICAL):|\S+ \S+ (?:ERROR|CRITICAL) |\[[^]]*: (?:ERROR|CRITICAL)/).*$", re.M
)
# Set once a signal interrupted the run.
INTERRUPTED = threading.Event()
# The measurement running now (run_measurement), for the signal handler to cancel.
_measuring: asyncio.Task[Any] | None = None


def log(message: str) -> None:
    print(f"[{time.monotonic() - STARTED:6.1f}s] {message}", flush=True)


# /proc readings.


def _descendants(pid: int) -> list[int]:
    """The process and all its children, grandchildren and so on."""
    found = [pid]
    for parent in found:
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{parent}/task"):
                with contextlib.suppress(OSError):
                    text = Path(f"/proc/{parent}/task/{task}/children").read_text()
                    found.extend(int(child) for child in text.split())
    return found


def rss_kib(pid: int) -> int:
    """VmRSS of the process and its descendants, in KiB."""
    total = 0
    for each in _descendants(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process (all its threads) and its descendants, in seconds."""
    ticks = 0
    for each in _descendants(pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{each}/stat").read_text().rpartition(")")[2].split()
            ticks += int(fields[11]) + int(fields[12])
    return ticks / CLK_TCK


def machine_busy_seconds() -> float:
    """CPU time all cores spent busy (not idle, not waiting on I/O), from /proc/stat."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclasses.dataclass
class CpuMarks:
    """CPU readings at one instant: named process trees, this process and the whole machine.

    Two marks make a window: what each tree spent in it, what this process spent, and what
    the rest of the machine did meanwhile (the noise beside the figures).
    """

    at: float
    trees: dict[str, float]
    own: float
    busy: float

    @classmethod
    def take(cls, pids: Mapping[str, int]) -> CpuMarks:
        return cls(
            at=time.monotonic(),
            trees={name: cpu_seconds(pid) for name, pid in pids.items()},
            own=own_cpu_seconds(),
            busy=machine_busy_seconds(),
        )

    def spent(self, end: CpuMarks) -> dict[str, float]:
        """CPU seconds of each tree from this mark to `end`."""
        return {name: end.trees[name] - before for name, before in self.trees.items()}

    def own_spent(self, end: CpuMarks) -> float:
        return end.own - self.own

    def others(self, end: CpuMarks) -> float:
        """CPU seconds of every process neither in the trees nor this one, over the window."""
        counted = sum(self.spent(end).values()) + self.own_spent(end)
        return max(0.0, end.busy - self.busy - counted)


@dataclasses.dataclass
class Window:
    """A measured window: its seconds, and the CPU seconds of the server's tree, of its
    redis-server, of this process (the bench's clients, or the worker it plays) and of every
    other process (the noise beside the figures)."""

    seconds: float = 0.0
    server: float = 0.0
    redis: float = 0.0
    own: float = 0.0
    other: float = 0.0

    @classmethod
    def between(cls, begin: CpuMarks, end: CpuMarks) -> Window:
        """The window from `begin` to `end`, marks of the trees "server" and "redis" (or of
        either one)."""
        spent = begin.spent(end)
        return cls(end.at - begin.at, spent.get("server", 0.0), spent.get("redis", 0.0),
                   begin.own_spent(end), begin.others(end))  # fmt: skip

    @property
    def minutes(self) -> float:
        return self.seconds / 60 if self.seconds else math.nan


async def until_quiet(
    pids: Sequence[int], interval: float, timeout: float, idle_cpu: float = 0.05
) -> bool:
    """Waits until the processes spent under `idle_cpu` CPU seconds over one `interval`, so
    that work still running from a previous step stays out of the next window; False when
    they were still busy after `timeout`."""
    deadline = time.monotonic() + timeout
    before = sum(cpu_seconds(pid) for pid in pids)
    while True:
        await asyncio.sleep(interval)
        now = sum(cpu_seconds(pid) for pid in pids)
        if now - before < idle_cpu:
            return True
        if time.monotonic() > deadline:
            return False
        before = now


# Figures and tables.


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (nearest rank) of values; NaN when there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    """The median of the values that are not NaN; NaN when there are none."""
    kept = sorted(v for v in values if not math.isnan(v))
    if not kept:
        return math.nan
    mid = len(kept) // 2
    return kept[mid] if len(kept) % 2 else (kept[mid - 1] + kept[mid]) / 2


def fmt(value: float, digits: int = 1) -> str:
    return "n/a" if math.isnan(value) else f"{value:,.{digits}f}"


def ratio(value: float, ref: float) -> str:
    """The value as " (xN)" of the reference; empty where either is NaN or the reference is 0."""
    if math.isnan(value) or math.isnan(ref) or not ref:
        return ""
    return f" (x{value / ref:.2f})"


def times(value: float, ref: float, digits: int = 1) -> str:
    """value / ref as "xN" (n/a where it has no meaning), for the summaries after a table."""
    if math.isnan(value) or math.isnan(ref) or not ref:
        return "n/a"
    return f"x{value / ref:.{digits}f}"


# A row of figures: its name, the figure of one column, its digits, and whether each column
# shows it as a ratio of the baseline column too.
Metric = tuple[str, Callable[[T], float], int, bool]
# A row of text: its name and the cell of one column.
TextRow = tuple[str, Callable[[T], str]]


def figure_rows(
    columns: Sequence[T | None], baseline: T | None, metrics: Sequence[Metric[T]]
) -> list[list[str]]:
    """Rows of figures, one cell per column (None: a column whose run failed), with ratios
    against the baseline column, measured in the same run."""
    rows = []
    for name, get, digits, relative in metrics:
        ref = get(baseline) if relative and baseline is not None else math.nan
        row = [name]
        for column in columns:
            if column is None:
                row.append("failed")
                continue
            value = get(column)
            row.append(fmt(value, digits) + (ratio(value, ref) if column is not baseline else ""))
        rows.append(row)
    return rows


def text_rows(columns: Sequence[T | None], texts: Sequence[TextRow[T]]) -> list[list[str]]:
    return [
        [name, *("failed" if column is None else show(column) for column in columns)]
        for name, show in texts
    ]


def comparison(
    headers: list[str],
    columns: Sequence[T | None],
    baseline: T | None,
    figures: Sequence[Metric[T]],
    texts: Sequence[TextRow[T]] = (),
    head: Sequence[TextRow[T]] = (),
) -> str:
    """A table of columns side by side: `head` rows, then figures with their ratios against
    the baseline column, then `texts` rows; a column of None is a run that failed."""
    rows = text_rows(columns, head) + figure_rows(columns, baseline, figures)
    return markdown_table(headers, rows + text_rows(columns, texts))


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    """A Markdown table padded to line up: the first column left-aligned, the rest right-aligned."""
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# What ran where.


def machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores ({model}), Python {platform.python_version()}"


def about() -> str:
    """The machine and the code a run measured, for its first and its report's first line."""
    return f"{machine()}; code {code_version()}"


def code_version() -> str:
    """The commit the servers ran, and whether the application code had uncommitted changes."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True)
        return done.stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--", "progress", "tasks_site")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" + uncommitted changes in progress/ or tasks_site/" if dirty else "")


# The process: its command line, its open files, its loop, its signals.


def command_line(
    doc: str, quick: str, only: Sequence[str] = (), only_help: str = "", drain: float = 0.0
) -> argparse.ArgumentParser:
    """A bench's command line: the first line of its docstring, and the options benches share:
    --quick (`quick` says what it runs) and --keep; --only one of `only` (repeatable) and
    --drain-timeout (default `drain`), where given."""
    parser = argparse.ArgumentParser(description=doc.split("\n", 1)[0])
    add = parser.add_argument
    add("--quick", action="store_true", help=quick)
    add("--keep", action="store_true", help="keep the temp dir (server logs)")
    if only:
        add("--only", action="append", choices=only, help=only_help or "run only this (repeatable)")
    if drain:
        add(
            "--drain-timeout",
            type=float,
            default=drain,
            help=f"seconds to wait for the final states once the job ended (default {drain:g})",
        )
    return parser


def raise_fd_limit(needed: int) -> None:
    """Raises this process's open-file limit (children inherit it): one fd per socket."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, needed))
            return
        raise SystemExit(f"Need {needed} open files, but the hard limit is {hard}.")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP unwind the run, so every `finally` runs.

    Inside a measurement (run_measurement) they cancel its task, so that sockets, threads and
    child processes wind down in order; elsewhere they raise KeyboardInterrupt. SIGINT is
    handled here too, since a shell starts background jobs with SIGINT ignored.
    """

    def handler(signum: int, frame: object) -> None:
        INTERRUPTED.set()
        task = _measuring
        if task is not None and not task.done():
            task.get_loop().call_soon_threadsafe(task.cancel)
            return
        raise KeyboardInterrupt(f"signal {signum}")

    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_measurement(runner: asyncio.Runner, measurement: Coroutine[Any, Any, T]) -> T:
    """Runs the coroutine on the runner as the task a signal cancels; that cancel, once it
    reaches here, is a KeyboardInterrupt."""

    async def tracked() -> T:
        global _measuring
        _measuring = asyncio.current_task()
        try:
            return await measurement
        finally:
            _measuring = None

    try:
        return runner.run(tracked())
    except asyncio.CancelledError:
        if INTERRUPTED.is_set():
            raise KeyboardInterrupt from None
        raise
