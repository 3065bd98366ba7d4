"""Change a render job's priority: ``manage.py priority ID N [--as-user U]``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from jobs import services
from jobs.cli import get_job, job_id
from renderhub import cli, outcome


class Command(BaseCommand):
    help = (
        "Change a queued or running job's priority (-100..100, higher first): the next free "
        "node slot of its cluster goes to the highest-priority job."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("id", type=job_id, metavar="ID", help="Job id, e.g. 12 or #12.")
        parser.add_argument("priority", type=int, metavar="N", help="-100..100, higher first.")
        cli.add_as_user_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        user = cli.resolve_user(options["as_user"])
        result = services.set_priority(get_job(options["id"], user), options["priority"], user)
        if not result.ok:
            raise CommandError(result.message)
        outcome.write(self, result)
