"""Submit a WDL workflow: ``manage.py submit_workflow WDL --project P --inputs F [--wait]``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from projects.cli import get_project
from renderhub import cli as base_cli
from workflows import cli, imports, services
from workflows.choices import TERMINAL_RUN_STATES, CallStatus, Engine, RunState
from workflows.models import WorkflowRun

POLL_INTERVAL = 0.5  # seconds between reads of the run while --wait shows progress


def _pause() -> None:
    time.sleep(POLL_INTERVAL)


class Command(BaseCommand):
    help = (
        "Submit a WDL workflow run. WDL is a local file or a storage URL; the inputs and "
        "options are local JSON files. Everything is checked before anything is submitted."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("wdl", metavar="WDL", help="Local .wdl file or storage URL.")
        parser.add_argument("--project", required=True, help="Project name.")
        parser.add_argument("--inputs", metavar="FILE", help="Inputs JSON (Cromwell style).")
        parser.add_argument("--options", metavar="FILE", help="Workflow options JSON.")
        parser.add_argument(
            "--engine",
            choices=Engine.values,
            default=Engine.MINIWDL,
            help="Where it runs (default: miniwdl, here).",
        )
        parser.add_argument(
            "--label", action="append", default=[], metavar="K=V", help="A label; repeatable."
        )
        parser.add_argument(
            "--dependencies",
            metavar="ZIP",
            help="Zip of imported WDL files (local or URL); without it, local imports are "
            "read next to the WDL and zipped with the run.",
        )
        parser.add_argument("--name", default="", help="Run name (default: the workflow's).")
        parser.add_argument("--working-dir", default="", metavar="URL", help="Storage folder.")
        parser.add_argument("--outputs-dir", default="", metavar="URL", help="Storage folder.")
        parser.add_argument(
            "--no-cache",
            action="store_true",
            help="Run every call again, none from the project's call cache (options: "
            "read_from_cache false); the results still go into the cache.",
        )
        parser.add_argument("--wait", action="store_true", help="Show progress until the run ends.")
        base_cli.add_as_user_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        user = base_cli.resolve_user(options["as_user"])
        project = get_project(options["project"], user)
        request = services.WorkflowRequest(
            project=project,
            inputs=cli.read_json_file(options["inputs"], "inputs") if options["inputs"] else {},
            options=cli.read_json_file(options["options"], "options") if options["options"] else {},
            labels=self.parse_labels(options["label"]),
            engine=options["engine"],
            name=options["name"],
            working_dir=options["working_dir"],
            outputs_dir=options["outputs_dir"],
        )
        if options["no_cache"]:
            if not isinstance(request.options, dict):
                raise CommandError("The options file must hold a JSON object.")
            request.options = {**request.options, "read_from_cache": False}
        if "://" in options["wdl"]:
            request.wdl_url = options["wdl"]
        else:
            path = Path(options["wdl"]).expanduser()
            try:
                request.wdl_source = path.read_text()
            except (OSError, UnicodeDecodeError) as exc:
                raise CommandError(f"Cannot read the WDL file {path}: {exc}") from None
            # Its imports are read next to it (and zipped with the run) unless a zip is given.
            request.beside = imports.local_beside(path.parent)
        if value := options["dependencies"]:
            if "://" in value:
                request.dependencies_url = value
            else:
                try:
                    request.dependencies_zip = Path(value).expanduser().read_bytes()
                except OSError as exc:
                    raise CommandError(f"Cannot read {value}: {exc.strerror}.") from None
        try:
            run = services.submit(request, user)
        except services.SubmissionError as exc:
            raise CommandError(cli.refusal(exc)) from None
        self.stdout.write(f"#{run.pk} {run.name}  on {run.engine}  -> {run.outputs_dir}")
        for warning in run.warnings:
            self.stderr.write(f"warning: {warning}")
        if options["wait"]:
            self.wait(run)

    def parse_labels(self, labels: list[str]) -> dict[str, str]:
        parsed = {}
        for label in labels:
            key, sep, value = label.partition("=")
            if not sep or not key.strip():
                raise CommandError(f"Write labels as --label name=value (not {label!r}).")
            parsed[key.strip()] = value.strip()
        return parsed

    def wait(self, run: WorkflowRun) -> None:
        bar = base_cli.ProgressBar(self.stdout, 0, unit="calls")
        try:
            while True:
                run.refresh_from_db()
                statuses = list(run.calls.values_list("status", flat=True))
                done = sum(1 for s in statuses if s == CallStatus.DONE)
                ended = run.state in TERMINAL_RUN_STATES
                if statuses:  # an empty bar ("0/0 calls") would read as complete
                    bar.update(done, total=len(statuses), note=run.state)
                if ended:
                    break
                _pause()
        except KeyboardInterrupt:
            bar.close()
            raise CommandError(
                f"Stopped waiting; run #{run.pk} goes on (see `manage.py workflow {run.pk}`).",
                returncode=130,
            ) from None
        bar.close()
        duration = base_cli.format_duration(run.duration)
        if run.state == RunState.SUCCEEDED:
            self.stdout.write(f"#{run.pk} {run.name} succeeded in {duration}")
            if note := cli.cache_note(list(run.calls.all())):
                self.stdout.write(note.capitalize())
            self.stdout.write(f"Outputs: {run.outputs_dir}")
            return
        reason = f":\n{run.failure_message}" if run.failure_message else ""
        raise CommandError(f"#{run.pk} {run.name} {run.state} after {duration}{reason}")
