"""Helpers of the workflow commands (the table, progress and user helpers are renderhub.cli's)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.core.management.base import CommandError

from renderhub import cli

from .models import Call, WorkflowRun

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from . import services


def run_id(value: str) -> int:
    """An argparse type: ``12`` or ``#12``."""
    try:
        number = int(value.removeprefix("#"))
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a workflow run id like 12 or #12")
    return number


def add_id_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", type=run_id, metavar="ID", help="Workflow run id, e.g. 12 or #12.")
    cli.add_as_user_argument(parser)


def visible_runs(user: User | None) -> Any:
    return WorkflowRun.objects.all() if user is None else WorkflowRun.objects.visible_to(user)


def get_run(pk: int, user: User | None) -> WorkflowRun:
    """The run if ``user`` may see it; a hidden run reads exactly like a missing one."""
    run = visible_runs(user).select_related("project").filter(pk=pk).first()
    if run is None:
        raise CommandError(f"There is no workflow run #{pk}.")
    return run


def read_json_file(path: str, what: str) -> Any:
    """A local JSON file; its syntax errors come back with the line and column."""
    try:
        text = Path(path).expanduser().read_text()
    except OSError as exc:
        raise CommandError(f"Cannot read the {what} file {path}: {exc.strerror}.") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandError(
            f"The {what} file {path} is not valid JSON: {exc.msg} "
            f"(line {exc.lineno}, column {exc.colno})."
        ) from None


def refusal(exc: services.SubmissionError) -> str:
    lines = [
        f"  {key}: {message}" if key != "__all__" else f"  {message}"
        for key, messages in exc.message_dict.items()
        for message in messages
    ]
    return "The workflow was refused:\n" + "\n".join(lines)


def cache_note(calls: list[Call]) -> str:
    """``3 calls from cache (runs #12, #14)``, or nothing when no call came from it."""
    cached = [c for c in calls if c.cache_hit]
    if not cached:
        return ""
    sources = sorted({c.cached_from for c in cached if c.cached_from})
    runs = f" (run{'s' if len(sources) > 1 else ''} {', '.join(f'#{s}' for s in sources)})"
    count = f"{len(cached)} call{'s' if len(cached) > 1 else ''}"
    return f"{count} from cache" + (runs if sources else "")


def call_row(call: Call) -> list[object]:
    cached = f"cached from #{call.cached_from}" if call.cached_from else "cached"
    note = cli.first_line(call.failure_message, 60) or (cached if call.cache_hit else "")
    return [
        call.name,
        call.shard if call.shard >= 0 else "-",
        call.attempt,
        call.status,
        cli.format_time(call.started_at),
        cli.format_duration(call.duration),
        "-" if call.return_code is None else call.return_code,
        note or "-",
    ]


CALL_HEADERS = ["call", "shard", "attempt", "status", "started", "duration", "rc", "note"]
