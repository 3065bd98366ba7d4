"""Show render logs: ``manage.py logs ID [--task N [--attempt N]] [--stdout | --stderr | --agent]``.

``--attempt N`` with ``--task`` shows that attempt of the chunk (the default is the latest):
a retried chunk keeps every attempt's logs, so attempt 1's renderer error stays readable.

``--node-stdout`` / ``--node-stderr`` with ``--task N`` show what BatchCompute kept of the
chunk's instance itself (the node entry's output): where to look when a VM failed before
the agent could write a log of its own.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from jobs.backends.batchcompute.finish import instance_logs
from jobs.choices import TaskState
from jobs.cli import get_job, job_id
from jobs.models import AttemptState, RenderJob, Task
from renderhub import cli, storage

NODE_STREAMS = ("stdout", "stderr")
# Which file in the task's log folder, and which column keeps its tail, per stream.
STREAMS = {
    "agent": ("agent.log", "agent_log_tail"),
    "stdout": ("stdout.log", "stdout_tail"),
    "stderr": ("stderr.log", "stderr_tail"),
}


class Command(BaseCommand):
    help = (
        "Without --task: the tail of every chunk's log. With --task N: that chunk's whole "
        "log from storage (the tail kept in the database while it still runs)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("id", type=job_id, metavar="ID", help="Job id, e.g. 12 or #12.")
        parser.add_argument("--task", type=int, metavar="N", help="The chunk (task) index.")
        parser.add_argument(
            "--attempt",
            type=int,
            metavar="N",
            help="With --task: that attempt of the chunk (1, 2, …; default: the latest).",
        )
        stream = parser.add_mutually_exclusive_group()
        for name, (filename, _column) in STREAMS.items():
            # call_command() keys options by their smallest option string: without the
            # --log-* alias, "--stdout" would swallow its stdout= (the output stream) kwarg.
            stream.add_argument(
                f"--{name}",
                f"--log-{name}",
                dest="stream",
                action="store_const",
                const=name,
                help=f"Show {filename}" + (" (the default)." if name == "agent" else "."),
            )
        for name in NODE_STREAMS:
            stream.add_argument(
                f"--node-{name}",
                dest="stream",
                action="store_const",
                const=f"node-{name}",
                help=f"With --task: the BatchCompute instance's own {name} (cloud chunks).",
            )
        parser.set_defaults(stream="agent")
        cli.add_as_user_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        job = get_job(options["id"], cli.resolve_user(options["as_user"]))
        stream = options["stream"]
        if options["task"] is None:
            if options["attempt"] is not None:
                raise CommandError("--attempt needs --task N.")
            self.tails(job, stream)
            return
        task = job.tasks.filter(index=options["task"]).first()
        if task is None:
            last = job.tasks.count() - 1
            raise CommandError(f"Job #{job.pk} has no task {options['task']} (tasks 0-{last}).")
        if options["attempt"] is not None:
            self.attempt_log(task, options["attempt"], stream)
            return
        if stream.startswith("node-"):
            self.node_log(task, stream.removeprefix("node-"))
            return
        self.whole_log(task, stream)

    def attempt_log(self, task: Task, number: int, stream: str) -> None:
        attempts = list(task.history.order_by("number"))
        attempt = next((a for a in attempts if a.number == number), None)
        if attempt is None:
            have = ", ".join(str(a.number) for a in attempts) or "none recorded"
            raise CommandError(f"{_describe(task)} has no attempt {number} (attempts: {have}).")
        if attempt is attempts[-1] and attempt.state == AttemptState.RUNNING:
            self.whole_log(task, stream)  # the running attempt: the task row's live tails
            return
        where = f" on {attempt.node}" if attempt.node else ""
        self.stderr.write(f"(attempt {number}{where}: {attempt.state})")
        if attempt.failure_reason:
            self.stderr.write(f"(why: {cli.first_line(attempt.failure_reason, 300)})")
        if stream.startswith("node-"):
            url = instance_logs(attempt).get(stream.removeprefix("node-"))
            if url is None:
                raise CommandError(f"Attempt {number} did not run on BatchCompute.")
            self.read_url(url)
            return
        filename, column = STREAMS[stream]
        if attempt.log_url:
            try:
                backend, key = storage.resolve(storage.join(attempt.log_url, filename))
                self.write_text(backend.read(key).decode("utf-8", errors="replace"))
                return
            except storage.StorageError as exc:
                self.stderr.write(f"({filename} of attempt {number} is not in storage: {exc})")
        self.stderr.write("(showing the last lines kept in the database)")
        self.write_text(getattr(attempt, column) or "(empty)")

    def read_url(self, url: str) -> None:
        try:
            backend, key = storage.resolve(url)
            self.write_text(backend.read(key).decode("utf-8", errors="replace"))
        except storage.NotFound:
            raise CommandError(f"BatchCompute has not written {url} (yet).") from None

    def node_log(self, task: Task, name: str) -> None:
        url = instance_logs(task).get(name)
        if url is None:
            raise CommandError(f"{_describe(task)} did not run on BatchCompute.")
        try:
            backend, key = storage.resolve(url)
            self.write_text(backend.read(key).decode("utf-8", errors="replace"))
        except storage.NotFound:
            raise CommandError(f"BatchCompute has not written {url} (yet).") from None

    def tails(self, job: RenderJob, stream: str) -> None:
        if stream.startswith("node-"):
            raise CommandError("--node-stdout and --node-stderr need --task N.")
        filename, column = STREAMS[stream]
        for task in job.tasks.all():
            self.stdout.write(f"==> {_describe(task)}: {filename} (last lines) <==")
            self.write_text(getattr(task, column) or "(empty)")
            self.stdout.write("")

    def whole_log(self, task: Task, stream: str) -> None:
        filename, column = STREAMS[stream]
        if task.state == TaskState.RUNNING:
            # Logs reach storage when an attempt ends (a stored one is an earlier attempt's);
            # the worker refreshes the database tail every heartbeat.
            why = "still running"
        elif not task.log_url:
            why = f"{filename} is not in storage"
        else:
            try:
                backend, key = storage.resolve(storage.join(task.log_url, filename))
                self.write_text(backend.read(key).decode("utf-8", errors="replace"))
                return
            except storage.NotFound:
                why = f"{filename} is not in storage yet"
            except storage.StorageError as exc:
                why = f"reading {filename} failed: {exc}"
        self.stderr.write(
            f"({_describe(task)}: {why}; showing the last lines kept in the database)"
        )
        if task.cloud_job_id:
            self.stderr.write("(--node-stdout and --node-stderr show the BatchCompute instance's)")
        self.write_text(getattr(task, column) or "(empty)")

    def write_text(self, text: str) -> None:
        if text:  # like cat: an empty log prints nothing
            self.stdout.write(text, ending="" if text.endswith("\n") else "\n")


def _describe(task: Task) -> str:
    node = f" on {task.node}" if task.node else ""
    return f"task {task.index} (frames {task.frame_label}, {task.state}{node})"
