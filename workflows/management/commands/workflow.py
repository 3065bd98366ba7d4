"""Show one workflow run with its calls: ``manage.py workflow ID``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from renderhub import cli as base_cli
from workflows import cli
from workflows.models import WorkflowRun


class Command(BaseCommand):
    help = "Show a workflow run: its state, folders and the table of its calls."

    def add_arguments(self, parser: CommandParser) -> None:
        cli.add_id_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        run = cli.get_run(options["id"], base_cli.resolve_user(options["as_user"]))
        calls = list(run.calls.all())
        self.header(run, cli.cache_note(calls))
        self.stdout.write("")
        if not calls:
            self.stdout.write("No calls yet.")
            return
        base_cli.print_table(self.stdout, cli.CALL_HEADERS, (cli.call_row(c) for c in calls))

    def header(self, run: WorkflowRun, cache_note: str) -> None:
        fields = [
            ("run", f"#{run.pk} {run.name}"),
            ("workflow", run.workflow_name),
            ("project", run.project.name),
            ("engine", f"{run.engine}" + (f" ({run.engine_run_id})" if run.engine_run_id else "")),
            ("state", run.state + (f" ({run.engine_status})" if run.engine_status else "")),
            ("submitted", base_cli.format_time(run.created_at)),
            ("started", base_cli.format_time(run.started_at)),
            ("finished", base_cli.format_time(run.finished_at)),
            ("duration", base_cli.format_duration(run.duration)),
            ("working dir", run.working_dir),
            ("outputs dir", run.outputs_dir),
        ]
        if cache_note:
            fields.append(("call cache", cache_note))
        if run.labels:
            fields.append(("labels", ", ".join(f"{k}={v}" for k, v in run.labels.items())))
        if run.resubmitted_from_id:
            fields.append(("resubmitted from", f"#{run.resubmitted_from_id}"))
        if run.poll_error:
            fields.append(("engine error", run.poll_error))
        if run.failure_message:
            fields.append(("failure", run.failure_message))
        width = max(len(label) for label, _ in fields) + 1
        for label, value in fields:
            self.stdout.write(f"{label + ':':<{width}} {value}")
