"""What every benchmark shares: logging, /proc readings, signals, the loop and the report."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import platform
import re
import resource
import signal
import threading
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

CLK_TCK = os.sysconf("SC_CLK_TCK")
STARTED = time.monotonic()
# An error line in a server's log: uvicorn's "ERROR:    ..." or Django's "<date> <time> ERROR ...".
ERROR_LINE = re.compile(r"^(?:ERROR:|\S+ \S+ ERROR ).*$", re.MULTILINE)
# Set once a signal interrupted the run.
INTERRUPTED = threading.Event()
# The measurement running now (run_measurement), for the signal handler to cancel.
_measuring: asyncio.Task[Any] | None = None


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


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of values; NaN when there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def fmt(value: float, digits: int = 1) -> str:
    return "n/a" if math.isnan(value) else f"{value:,.{digits}f}"


def ratio(value: float, ref: float) -> str:
    """The value as " (xN)" of the reference; empty where either is NaN or the reference is 0."""
    if math.isnan(value) or math.isnan(ref) or not ref:
        return ""
    return f" (x{value / ref:.2f})"


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


def median(values: list[float]) -> float:
    values = sorted(v for v in values if not math.isnan(v))
    if not values:
        return math.nan
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores ({model}), Python {platform.python_version()}"


def raise_fd_limit(needed: int) -> None:
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


def log(message: str) -> None:
    print(f"[{time.monotonic() - STARTED:6.1f}s] {message}", flush=True)


# Ctrl-C, SIGTERM and SIGHUP, for the benches that run their loop a measurement at a time.


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP unwind the run, so every `finally` runs.

    Inside a measurement (run_measurement) they cancel its task, so that sockets, threads and
    the loop wind down in order; elsewhere they raise KeyboardInterrupt. SIGINT is handled here
    too, since a shell starts background jobs with SIGINT ignored.
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
