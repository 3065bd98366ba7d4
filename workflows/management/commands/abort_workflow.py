"""Abort a workflow run: ``manage.py abort_workflow ID``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from renderhub import cli as base_cli
from workflows import cli, services
from workflows.models import WorkflowRun


class Command(BaseCommand):
    help = "Abort a submitted or running workflow run; its engine stops its tasks."

    def add_arguments(self, parser: CommandParser) -> None:
        cli.add_id_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        run = cli.get_run(options["id"], base_cli.resolve_user(options["as_user"]))
        if not services.abort(run):
            state = WorkflowRun.objects.values_list("state", flat=True).get(pk=run.pk)
            self.stdout.write(f"Workflow run #{run.pk} is already {state}; nothing to abort.")
            return
        run.refresh_from_db()
        self.stdout.write(f"Workflow run #{run.pk} is {run.state}.")
        if run.poll_error:
            self.stderr.write(run.poll_error)
