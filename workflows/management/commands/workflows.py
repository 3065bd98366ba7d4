"""List workflow runs: ``manage.py workflows [--state S] [--project P] [--engine E]``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db.models import Count, Q

from projects.cli import get_project
from renderhub import cli as base_cli
from workflows import cli
from workflows.choices import CallStatus, Engine, RunState
from workflows.models import WorkflowRun


class Command(BaseCommand):
    help = "List workflow runs, newest first."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--state", choices=RunState.values, help="Only runs in this state.")
        parser.add_argument("--project", metavar="P", help="Only this project's runs.")
        parser.add_argument("--engine", choices=Engine.values, help="Only runs on this engine.")
        parser.add_argument(
            "--limit", type=int, default=20, metavar="N", help="At most N runs (default 20)."
        )
        base_cli.add_as_user_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        user = base_cli.resolve_user(options["as_user"])
        runs = cli.visible_runs(user).select_related("project")
        if options["project"]:
            runs = runs.filter(project=get_project(options["project"], user))
        if options["state"]:
            runs = runs.filter(state=options["state"])
        if options["engine"]:
            runs = runs.filter(engine=options["engine"])
        # Aggregating queries ignore Meta.ordering: order them explicitly.
        runs = runs.annotate(
            call_count=Count("calls"), done=Count("calls", filter=Q(calls__status=CallStatus.DONE))
        ).order_by("-created_at", "-id")
        limit = max(1, options["limit"])
        rows = list(runs[: limit + 1])
        if not rows:
            self.stdout.write("No workflow runs.")
            return
        base_cli.print_table(
            self.stdout,
            ["id", "name", "project", "engine", "state", "calls", "started", "duration"],
            (_row(run) for run in rows[:limit]),
            right=(0,),
        )
        if len(rows) > limit:
            self.stdout.write(f"(showing the newest {limit}; use --limit for more)")


def _row(run: WorkflowRun) -> list[object]:
    return [
        run.pk,
        run.name,
        run.project.name,
        run.engine,
        run.state,
        f"{run.done}/{run.call_count}" if run.call_count else "-",  # type: ignore[attr-defined]
        base_cli.format_time(run.started_at),
        base_cli.format_duration(run.duration),
    ]
