"""Show call logs: ``manage.py workflow_logs ID [--call NAME] [--shard N] [--stdout]``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from renderhub import cli as base_cli
from workflows import cli, services
from workflows.models import Call

TAIL_LINES = 10


class Command(BaseCommand):
    help = (
        "Without --call: the last lines of every call's stderr. With --call NAME: that "
        "call's whole log (each shard and attempt, or the one --shard/--attempt picks)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        cli.add_id_argument(parser)
        parser.add_argument("--call", metavar="NAME", help="e.g. align or germline.align")
        parser.add_argument("--shard", type=int, metavar="N")
        parser.add_argument("--attempt", type=int, metavar="N")
        # --log-* aliases: call_command() would take --stdout as its own stdout= kwarg.
        parser.add_argument(
            "--stdout", "--log-stdout", dest="stream", action="store_const", const="stdout"
        )
        parser.set_defaults(stream="stderr")

    def handle(self, *args: Any, **options: Any) -> None:
        run = cli.get_run(options["id"], base_cli.resolve_user(options["as_user"]))
        calls = list(run.calls.select_related("run"))
        if options["call"]:
            wanted = options["call"]
            calls = [c for c in calls if c.name == wanted or c.name.endswith("." + wanted)]
            if not calls:
                names = ", ".join(sorted({c.name for c in run.calls.all()})) or "none yet"
                raise CommandError(f"Run #{run.pk} has no call {wanted!r} (calls: {names}).")
        if options["shard"] is not None:
            calls = [c for c in calls if c.shard == options["shard"]]
        if options["attempt"] is not None:
            calls = [c for c in calls if c.attempt == options["attempt"]]
        if not calls:
            self.stdout.write(f"Run #{run.pk} has no matching calls.")
            return
        whole = bool(options["call"])
        for call in calls:
            self.show(call, options["stream"], whole)

    def show(self, call: Call, stream: str, whole: bool) -> None:
        log = services.read_log(call, stream)
        what = "" if whole else f" (last {TAIL_LINES} lines)"
        self.stdout.write(f"==> {call.label} attempt {call.attempt} {call.status}: {stream}{what}")
        if not log.ok:
            self.stdout.write(f"({log.source})")
        elif text := (log.text if whole else "\n".join(log.text.splitlines()[-TAIL_LINES:])):
            self.stdout.write(text, ending="" if text.endswith("\n") else "\n")
        else:
            self.stdout.write("(empty)")
        if not whole:
            self.stdout.write("")
