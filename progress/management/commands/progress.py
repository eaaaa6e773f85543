"""`manage.py progress ...`: operator commands of the progress app."""

from __future__ import annotations

import time
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from progress import services
from progress.conf import progress_settings


class Command(BaseCommand):
    help = "Operate the progress service. Subcommands: sweep."

    def add_arguments(self, parser: ArgumentParser) -> None:
        commands = parser.add_subparsers(dest="command", required=True)
        sweep = commands.add_parser(
            "sweep",
            help="End FAILURE the running jobs whose worker was lost (no lease renewal).",
        )
        sweep.add_argument(
            "--every",
            type=float,
            default=0,
            help="Sweep again every N seconds until interrupted (default: once).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Runs the subcommand given on the command line."""
        if options["command"] == "sweep":
            self._sweep(float(options["every"]))

    def _sweep(self, every: float) -> None:
        """Web processes sweep while sockets watch; this covers deployments where none do."""
        if not progress_settings.WORKER_LOST_AFTER:
            raise CommandError("PROGRESS['WORKER_LOST_AFTER'] is 0: lost workers are not tracked.")
        while True:
            ended = services.sweep_lost_jobs()
            self.stdout.write(f"Ended {len(ended)} jobs whose worker was lost.")
            for job_id in ended:
                self.stdout.write(f"  {job_id}")
            if not every:
                return
            time.sleep(every)
