"""Cancel a render job: ``manage.py cancel ID [--cascade] [--as-user U]``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from jobs import services
from jobs.cli import get_job, job_id
from renderhub import cli, outcome


class Command(BaseCommand):
    help = "Cancel a queued or running job: its open chunks stop and its frames are cancelled."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("id", type=job_id, metavar="ID", help="Job id, e.g. 12 or #12.")
        parser.add_argument(
            "--cascade", action="store_true", help="Also cancel the jobs waiting for it."
        )
        cli.add_as_user_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        job = get_job(options["id"], cli.resolve_user(options["as_user"]))
        outcome.write(self, services.cancel_job(job, cascade=options["cascade"]))
