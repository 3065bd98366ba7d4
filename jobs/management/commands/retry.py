"""Retry a render job: ``manage.py retry ID [--as-user U]``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from jobs import services
from jobs.cli import get_job, job_id
from renderhub import cli


class Command(BaseCommand):
    help = "Run the failed and cancelled chunks of an ended job again (only unfinished frames)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("id", type=job_id, metavar="ID", help="Job id, e.g. 12 or #12.")
        cli.add_as_user_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        job = get_job(options["id"], cli.resolve_user(options["as_user"]))
        if job.is_active:
            # retry_job would also release chunks held for the test frame; never do that.
            raise CommandError(
                f"Job #{job.pk} is still {job.state}; wait for it to end or cancel it first."
            )
        retried = services.retry_job(job)
        if retried == 0:
            self.stdout.write(f"Job #{job.pk} has no failed or cancelled chunks; nothing to retry.")
            return
        self.stdout.write(f"Retrying job #{job.pk}: {cli.plural(retried, 'chunk')} queued again.")
