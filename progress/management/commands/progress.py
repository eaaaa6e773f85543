"""`manage.py progress ...`: launch, watch, purge and sweep jobs. A terminal."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from argparse import ArgumentParser
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from progress.conf import progress_settings
from progress.core import commands, maintenance, reads, registry
from progress.exceptions import JobNotFound, ProgressError
from progress.models import Job
from progress.protocol.states import JobDict, State
from progress.web.subscriptions import subscribe

# `watch` exits with the job's outcome; 2 is a usage error, as with argparse.
EXIT_CODES = {State.SUCCESS: 0, State.FAILURE: 1, State.REVOKED: 3}
USAGE_ERROR = 2
# Exit code of `watch --timeout` when the job has not ended in time.
TIMED_OUT = 4


class Command(BaseCommand):
    help = "Operate the progress service. Subcommands: launch, watch, purge, sweep."

    def add_arguments(self, parser: ArgumentParser) -> None:
        commands = parser.add_subparsers(dest="command", required=True)
        launch = commands.add_parser(
            "launch",
            help="Launch a registered task for a user: launch demo.count steps=50 --user demo.",
        )
        launch.add_argument("task", help="The task's registered name, e.g. demo.count.")
        launch.add_argument(
            "params",
            nargs="*",
            metavar="name=value",
            help="Launch params; values are read as JSON when they parse (50, null, true).",
        )
        launch.add_argument("--user", required=True, help="The username who owns the job.")
        launch.add_argument("--watch", action="store_true", help="Then watch it, as `watch` does.")
        watch = commands.add_parser(
            "watch",
            help="Show a job's live bar; exit 0 on SUCCESS, 1 on FAILURE, 3 on REVOKED.",
        )
        watch.add_argument("job", help="The job's id.")
        for sub in (launch, watch):
            sub.add_argument(
                "--json",
                action="store_true",
                help="Print each state as a line of JSON instead of a bar.",
            )
            sub.add_argument(
                "--timeout",
                type=float,
                default=0,
                help="Give up after N seconds (exit 4); default: wait for the end.",
            )
        purge = commands.add_parser(
            "purge",
            help="Delete finished jobs older than PROGRESS['RETENTION'], their states and files.",
        )
        purge.add_argument(
            "--older-than",
            type=float,
            default=None,
            help="Seconds; overrides RETENTION for this run.",
        )
        sweep = commands.add_parser(
            "sweep",
            help="End FAILURE the running jobs whose worker was lost (no lease renewal).",
        )
        for sub in (purge, sweep):
            sub.add_argument(
                "--every",
                type=float,
                default=0,
                help="Run again every N seconds until interrupted (default: once).",
            )

    def handle(self, *args: Any, **options: Any) -> None:
        """Runs the subcommand given on the command line."""
        command = options["command"]
        if command == "launch":
            self._launch(options)
        elif command == "watch":
            self._watch(options["job"], options["json"], options["timeout"])
        elif command == "purge":
            self._repeat(options["every"], lambda: self._purge(options["older_than"]))
        elif command == "sweep":
            if not progress_settings.WORKER_LOST_AFTER:
                raise CommandError(
                    "PROGRESS['WORKER_LOST_AFTER'] is 0: lost workers are not tracked."
                )
            self._repeat(options["every"], self._sweep)

    def _launch(self, options: dict[str, Any]) -> None:
        """Runs `launch`: the same validation and limits as a launch over HTTP."""
        try:
            user = get_user_model()._default_manager.get_by_natural_key(options["user"])
        except get_user_model().DoesNotExist:
            raise CommandError(f"No user {options['user']!r}.", returncode=USAGE_ERROR) from None
        params = dict(_param(text) for text in options["params"])
        try:
            job = commands.launch(user, options["task"], **params)
        except ProgressError as exc:
            fields = getattr(exc, "fields", None)
            detail = "".join(
                f"\n  {name}: {' '.join(errors)}" for name, errors in (fields or {}).items()
            )
            raise CommandError(f"{exc}{detail}", returncode=USAGE_ERROR) from None
        self.stdout.write(str(job.pk))
        if options["watch"]:
            self._watch(str(job.pk), options["json"], options["timeout"])

    def _watch(self, job_id: str, as_json: bool, timeout: float) -> None:
        """Runs `watch`: follows the job over the channel layer until it ends."""
        try:
            job = reads.job_by_id(job_id)
        except JobNotFound:
            raise CommandError(f"No job {job_id!r}.", returncode=USAGE_ERROR) from None
        view = _JsonLines(self.stdout) if as_json else _bar(registry.title_of(job.task))
        try:
            final = asyncio.run(_follow(job, view, timeout or None))
        finally:
            view.close()
        if final is None:
            raise CommandError(
                f"Job {job.pk} has not ended after {timeout:g}s.", returncode=TIMED_OUT
            )
        state = State(final["state"])
        if not as_json:
            outcome = final.get("error") if state is State.FAILURE else final.get("result")
            self.stdout.write(f"{state.value}" + (f": {_text(outcome)}" if outcome else ""))
        if EXIT_CODES[state]:
            sys.exit(EXIT_CODES[state])

    def _purge(self, older_than: float | None) -> None:
        purged = maintenance.purge_finished(older_than)
        self.stdout.write(f"Purged {purged} finished jobs.")

    def _sweep(self) -> None:
        """Web processes sweep while sockets watch; this covers deployments where none do."""
        ended = maintenance.sweep_lost_jobs()
        self.stdout.write(f"Ended {len(ended)} jobs whose worker was lost.")
        for job_id in ended:
            self.stdout.write(f"  {job_id}")

    def _repeat(self, every: float, chore: Any) -> None:
        while True:
            chore()
            if not every:
                return
            time.sleep(every)


def _param(text: str) -> tuple[str, Any]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise CommandError(f"Params are name=value, not {text!r}.", returncode=USAGE_ERROR)
    try:
        return name, json.loads(value)
    except ValueError:
        return name, value


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


async def _follow(job: Job, view: Any, timeout: float | None) -> JobDict | None:
    """Shows each state of the job; the final one, or None when `timeout` ran out first."""

    async def follow() -> JobDict:
        last: JobDict | None = None
        async for state in subscribe(job.pk):
            view.show(state)
            last = state
        assert last is not None
        return last

    try:
        return await asyncio.wait_for(follow(), timeout)
    except TimeoutError:
        return None


class _JsonLines:
    """Prints each state as one line of the contract's JSON."""

    def __init__(self, out: Any) -> None:
        self.out = out

    def show(self, state: JobDict) -> None:
        self.out.write(json.dumps(state, separators=(",", ":"), ensure_ascii=False))
        self.out.flush()

    def close(self) -> None:
        """Nothing to tidy."""


_KNOWN = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"
_UNKNOWN = "{desc}: {n_fmt} [{elapsed}{postfix}]"


def _bar(title: str) -> _Bar | _Lines:
    """tqdm's bar, which the [cli] extra installs; a line per state without it."""
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return _Lines(title)
    return _Bar(title)


class _Lines:
    """A line per state on stderr, for terminals without tqdm: "Count: PROGRESS 3/10 (30%)"."""

    def __init__(self, title: str) -> None:
        self.title = title

    def show(self, state: JobDict) -> None:
        current, total, percent = state.get("current"), state.get("total"), state.get("percent")
        counts = f" {current}/{total}" if total else f" {current}" if current else ""
        share = f" ({percent:.0f}%)" if isinstance(percent, int | float) else ""
        message = f" {state.get('message')}" if state.get("message") else ""
        print(f"{self.title}: {state['state']}{counts}{share}{message}", file=sys.stderr)

    def close(self) -> None:
        """Nothing to close: each line is whole."""


class _Bar:
    """A tqdm bar on stderr, so that stdout keeps only the outcome for scripts."""

    def __init__(self, title: str) -> None:
        from tqdm import tqdm

        self.bar = tqdm(
            desc=title, total=None, file=sys.stderr, dynamic_ncols=True, bar_format=_UNKNOWN
        )

    def show(self, state: JobDict) -> None:
        total = state.get("total")
        if total != self.bar.total:
            self.bar.reset(total=total)
            # The job's own counts, not tqdm's rate: states arrive in jumps, throttled.
            self.bar.bar_format = _KNOWN if total else _UNKNOWN
        self.bar.n = state.get("current") or 0
        text = f"{state['state']} {state.get('message') or ''}".strip()
        self.bar.set_postfix_str(text, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()
