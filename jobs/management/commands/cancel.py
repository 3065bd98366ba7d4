"""Cancel a render job: ``manage.py cancel ID [--as-user U]``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from jobs import cli, services
from jobs.models import RenderJob
from renderhub.compute import ComputeError


class Command(BaseCommand):
    help = "Cancel a queued or running job: its open chunks stop and its frames are cancelled."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("id", type=cli.job_id, metavar="ID", help="Job id, e.g. 12 or #12.")
        cli.add_as_user_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        job = cli.get_job(options["id"], cli.resolve_user(options["as_user"]))
        if not job.is_active:
            self.stdout.write(f"Job #{job.pk} is already {job.state}; nothing to cancel.")
            return
        try:
            stopped = services.cancel_job(job)
        except ComputeError as exc:
            # The rows are cancelled already; only stopping the remote work failed.
            raise CommandError(
                f"Job #{job.pk} is cancelled, but stopping it failed: {exc}"
            ) from None
        if stopped == 0:  # it ended between our read and the cancel
            state = RenderJob.objects.values_list("state", flat=True).get(pk=job.pk)
            self.stdout.write(f"Job #{job.pk} is already {state}; nothing to cancel.")
            return
        self.stdout.write(f"Cancelled job #{job.pk} ({cli.plural(stopped, 'chunk')} stopped)")
