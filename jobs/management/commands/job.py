"""Show one render job: ``manage.py job ID [--as-user U]``."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from jobs.choices import FrameState, TaskState
from jobs.cli import get_job, job_id
from jobs.framespec import format_frames
from jobs.models import RenderJob, Task
from jobs.timing import eta
from renderhub import cli


class Command(BaseCommand):
    help = "Show a render job with its chunks (tasks) and failed frames."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("id", type=job_id, metavar="ID", help="Job id, e.g. 12 or #12.")
        cli.add_as_user_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        job = get_job(options["id"], cli.resolve_user(options["as_user"]))
        self.header(job)
        self.stdout.write("")
        cli.print_table(
            self.stdout,
            ["task", "frames", "state", "attempts", "node", "started", "duration", "reason"],
            (_task_row(task) for task in job.tasks.all()),
            right=(0,),
        )
        self.cloud_jobs(job)
        self.failed_frames(job)

    def header(self, job: RenderJob) -> None:
        frames = f"{job.frames_done} done, {job.frames_failed} failed, {job.frame_count} total"
        fields = [
            ("job", f"#{job.pk} {job.name}"),
            ("project", job.project.name),
            ("scene", job.scene_url),
            ("software", str(job.software)),
            ("cluster", job.cluster.name),
            ("state", job.state + (" (paused)" if job.is_paused else "")),
            *_waits_field(job),
            ("frames", f"{job.frame_spec}: {frames}"),
            ("created", cli.format_time(job.created_at)),
            ("started", cli.format_time(job.started_at)),
            ("finished", cli.format_time(job.finished_at)),
            ("duration", cli.format_duration(job.duration)),
            *_eta_field(job),
            ("output", job.output_url),
        ]
        for movie in job.movies.all():
            fields.append(("movie", f"job #{movie.pk} ({movie.state})"))
        if job.downloaded_to:
            fields.append(("downloaded to", job.downloaded_to))
        if job.failure_reason:
            fields.append(("failure", job.failure_reason))
        fields += [("warning", warning) for warning in job.warnings]
        width = max(len(label) for label, _ in fields) + 1
        for label, value in fields:
            self.stdout.write(f"{label + ':':<{width}} {value}")

    def cloud_jobs(self, job: RenderJob) -> None:
        """Its BatchCompute jobs: what the service said last, and the last failed call."""
        rows = list(job.cloud_jobs.order_by("pk"))
        if not rows:
            return
        self.stdout.write("")
        self.stdout.write("BatchCompute jobs:")
        for cj in rows:
            said = f"{cj.state}, BatchCompute: {cj.cloud_state or '-'}"
            self.stdout.write(f"  {cj.cloud_id or cj.name} ({said}; {cj.instance_count} chunks)")
            for label, value in (("message", cj.message), ("last error", cj.error)):
                if value:
                    self.stdout.write(f"    {label}: {cli.first_line(value, 300)}")

    def failed_frames(self, job: RenderJob) -> None:
        by_reason: dict[str, list[int]] = defaultdict(list)
        failed = job.frame_set.filter(state=FrameState.FAILED).order_by("number")
        for number, reason in failed.values_list("number", "failure_reason"):
            by_reason[reason].append(number)
        if not by_reason:
            return
        self.stdout.write("")
        self.stdout.write("Failed frames:")
        for reason, numbers in by_reason.items():
            self.stdout.write(f"  {format_frames(numbers)}: {cli.first_line(reason, 200) or '-'}")


def _eta_field(job: RenderJob) -> list[tuple[str, str]]:
    """The ETA line of an active job: the time and what it is based on, or why there is none."""
    found = eta(job)
    if found is None:
        return []
    if found.seconds is None:
        return [("eta", found.why_none)]
    return [("eta", f"{cli.format_duration(found.seconds)} ({found.label})")]


def _task_row(task: Task) -> list[object]:
    duration = None
    # A requeued chunk keeps its last start time; only a running or ended one has a duration.
    if task.started_at and (task.finished_at or task.state == TaskState.RUNNING):
        duration = ((task.finished_at or timezone.now()) - task.started_at).total_seconds()
    return [
        f"{task.index}{' (test)' if task.is_test else ''}",
        task.frame_label,
        task.state,
        f"{task.attempts}/{task.max_attempts}",
        task.node or "-",
        cli.format_time(task.started_at),
        cli.format_duration(duration),
        cli.first_line(task.failure_reason) or "-",
    ]


def _waits_field(job: RenderJob) -> list[tuple[str, str]]:
    """What an active job waits for (jobs it runs after), and why it is held."""
    if not job.is_waiting:
        return []
    upstream = ", ".join(f"#{pk} ({state})" for pk, state in job.after.values_list("pk", "state"))
    held = f"; {job.hold_reason}" if job.hold_reason else ""
    return [("waits for", upstream + held)]
