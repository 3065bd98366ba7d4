"""Pause a render job: ``manage.py pause ID [--now] [--as-user U]``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from jobs import services
from jobs.cli import get_job, job_id
from renderhub import cli, outcome


class Command(BaseCommand):
    help = (
        "Pause a queued or running job: no new chunk starts and running chunks finish; "
        "with --now running chunks stop and are queued again (finished frames are kept)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("id", type=job_id, metavar="ID", help="Job id, e.g. 12 or #12.")
        parser.add_argument(
            "--now", action="store_true", help="Stop the running chunks too (own machines)."
        )
        cli.add_as_user_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        job = get_job(options["id"], cli.resolve_user(options["as_user"]))
        outcome.write(self, services.pause_job(job, now=options["now"]))
