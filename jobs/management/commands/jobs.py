"""List render jobs: ``manage.py jobs [--state S] [--project P] [--limit N] [--as-user U]``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from jobs.choices import JobState
from jobs.cli import visible_jobs
from jobs.models import RenderJob
from projects.cli import get_project
from renderhub import cli


class Command(BaseCommand):
    help = "List render jobs, newest first."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--state", choices=JobState.values, help="Only jobs in this state.")
        parser.add_argument("--project", metavar="P", help="Only this project's jobs.")
        parser.add_argument(
            "--limit", type=int, default=20, metavar="N", help="At most N jobs (default 20)."
        )
        cli.add_as_user_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        user = cli.resolve_user(options["as_user"])
        jobs = visible_jobs(user).select_related("project")
        if options["project"]:
            jobs = jobs.filter(project=get_project(options["project"], user))
        if options["state"]:
            jobs = jobs.filter(state=options["state"])
        limit = max(1, options["limit"])
        rows = list(jobs[: limit + 1])
        if not rows:
            self.stdout.write("No jobs.")
            return
        cli.print_table(
            self.stdout,
            ["id", "name", "project", "state", "frames", "started", "duration"],
            (_row(job) for job in rows[:limit]),
            right=(0,),
        )
        if len(rows) > limit:
            self.stdout.write(f"(showing the newest {limit}; use --limit for more)")


def _row(job: RenderJob) -> list[object]:
    frames = f"{job.frames_done}/{job.frame_count}"
    if job.frames_failed:
        frames += f" ({job.frames_failed} failed)"
    return [
        job.pk,
        job.name,
        job.project.name,
        job.state + (" (paused)" if job.is_paused else " (waiting)" if job.is_waiting else ""),
        frames,
        cli.format_time(job.started_at),
        cli.format_duration(job.duration),
    ]
