"""List a workflow run's outputs: ``manage.py workflow_outputs ID [--json]``."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from renderhub import cli as base_cli
from workflows import access, cli
from workflows.choices import RunState


class Command(BaseCommand):
    help = "Show a workflow run's outputs: files by storage URL, then the other values."

    def add_arguments(self, parser: CommandParser) -> None:
        cli.add_id_argument(parser)
        parser.add_argument("--json", action="store_true", help="The outputs JSON as stored.")

    def handle(self, *args: Any, **options: Any) -> None:
        run = cli.get_run(options["id"], base_cli.resolve_user(options["as_user"]))
        if options["json"]:
            self.stdout.write(json.dumps(run.outputs, indent=2, sort_keys=True))
            return
        if not run.outputs:
            why = "it has not succeeded yet" if run.state != RunState.SUCCEEDED else "none"
            self.stdout.write(f"Workflow run #{run.pk} has no outputs ({why}).")
            return
        files, values = access.output_files(run)
        if files:
            base_cli.print_table(self.stdout, ["output", "url"], ([f.name, f.url] for f in files))
        if values:
            if files:
                self.stdout.write("")
            base_cli.print_table(
                self.stdout,
                ["output", "value"],
                ([name, json.dumps(value)] for name, value in values.items()),
            )
