"""`make run`'s supervisor: the Procfile's processes in the foreground, stopped in order.

Development only. honcho, which `make run` used before, stops every process at once and
kills what is left five seconds later: Redis went down with the worker still ending its
jobs, and a job longer than that lost its final state and its log. Here SIGTERM or
Ctrl-C stops the processes one at a time, in the reverse of their start order (web,
beat, worker, then Redis), each given its grace period before it is killed:

    python -m devstack.supervise Procfile redis worker beat web

Each process runs in a session of its own, so that a signal to the terminal's process
group (Ctrl-C, `kill -TERM -<pgid>`) reaches this supervisor only. When a process ends by
itself, the others are stopped the same way, and the exit status is its.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

# Seconds each process has to stop after SIGTERM before it is killed. The worker's warm
# shutdown ends its jobs at once (progress.worker.shutdown); its tasks stop at their next
# report, which a task that reports rarely may take a while to reach.
GRACE = {"web": 10.0, "beat": 5.0, "worker": 20.0, "redis": 10.0}
DEFAULT_GRACE = 10.0


@dataclass
class Process:
    name: str
    command: str
    popen: subprocess.Popen[bytes] | None = None
    reader: threading.Thread | None = field(default=None, repr=False)


def read_procfile(path: Path) -> dict[str, str]:
    """The Procfile's `name: command` lines, by name."""
    entries = {}
    for line in path.read_text().splitlines():
        name, sep, command = line.partition(":")
        if sep and name.strip() and not name.lstrip().startswith("#"):
            entries[name.strip()] = command.strip()
    return entries


class Supervisor:
    def __init__(self, processes: list[Process]) -> None:
        self.processes = processes
        self.width = max(len("system"), *(len(process.name) for process in processes))
        # Set by the signal handler, which does nothing else: printing or taking a lock
        # there can deadlock with the thread it interrupted.
        self.signalled: int | None = None
        self._print_lock = threading.Lock()

    def say(self, name: str, line: str) -> None:
        with self._print_lock:
            stamp = time.strftime("%H:%M:%S")
            print(f"{stamp} {name.ljust(self.width)} | {line}", flush=True)

    def start(self) -> None:
        for process in self.processes:
            # Unbuffered: a process's lines show as it writes them, not when it exits.
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}
            process.popen = subprocess.Popen(
                ["/bin/sh", "-c", process.command], env=env,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
            process.reader = threading.Thread(target=self._relay, args=(process,), daemon=True)
            process.reader.start()
            self.say("system", f"{process.name} started (pid={process.popen.pid})")

    def _relay(self, process: Process) -> None:
        """Runs in a thread per process: prints its output, line by line, under its name."""
        assert process.popen is not None and process.popen.stdout is not None
        for raw in process.popen.stdout:
            self.say(process.name, raw.decode("utf-8", "replace").rstrip("\n"))

    def wait(self) -> int:
        """Runs until a signal or a process that ends by itself; returns the exit status."""
        status = None
        while status is None and self.signalled is None:
            for process in self.processes:
                assert process.popen is not None
                code = process.popen.poll()
                if code is not None:
                    self.say("system", f"{process.name} stopped by itself (rc={code})")
                    status = code or 1
                    break
            else:
                time.sleep(0.2)
        if self.signalled is not None:
            name = signal.Signals(self.signalled).name
            self.say("system", f"{name} received: stopping in order")
        self.stop()
        return status or 0

    def stop(self) -> None:
        """Stops each process still running, the last started first."""
        for process in reversed(self.processes):
            popen = process.popen
            if popen is None or popen.poll() is not None:
                continue
            grace = GRACE.get(process.name, DEFAULT_GRACE)
            self.say("system", f"stopping {process.name} (SIGTERM, up to {grace:.0f}s)")
            popen.send_signal(signal.SIGTERM)
            try:
                popen.wait(grace)
            except subprocess.TimeoutExpired:
                self.say("system", f"{process.name} did not stop in {grace:.0f}s: killing it")
                os.killpg(popen.pid, signal.SIGKILL)
                popen.wait()
            if process.reader is not None:
                process.reader.join(2)
            self.say("system", f"{process.name} stopped (rc={popen.returncode})")


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: python -m devstack.supervise Procfile name [name ...]", file=sys.stderr)
        return 2
    entries = read_procfile(Path(argv[0]))
    unknown = [name for name in argv[1:] if name not in entries]
    if unknown:
        print(f"Not in {argv[0]}: {', '.join(unknown)}", file=sys.stderr)
        return 2
    supervisor = Supervisor([Process(name, entries[name]) for name in argv[1:]])

    def on_signal(signum: int, _frame: object) -> None:
        supervisor.signalled = signum

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    supervisor.start()
    return supervisor.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
