"""What a service operation did, in words every caller shows the same way.

A service returns an :class:`Outcome` instead of raising for what happened after its rows
were committed (e.g. the cloud job of a cancelled render could not be stopped yet): the
change stands, so a caller must say so rather than answer an error. Staff pages and admin
actions show it with :func:`add_messages`, the CLI with :func:`write`, and the API returns
its fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.contrib import messages

if TYPE_CHECKING:
    from django.core.management.base import BaseCommand
    from django.http import HttpRequest


@dataclass(frozen=True)
class Outcome:
    ok: bool  # it did what was asked; False: nothing to do (e.g. the job had ended already)
    message: str  # one sentence saying what happened
    count: int = 0  # how many things it changed (e.g. chunks cancelled)
    warnings: tuple[str, ...] = ()  # done, but something after it failed; what happens next


def add_messages(request: HttpRequest, outcome: Outcome) -> None:
    level = messages.SUCCESS if outcome.ok else messages.INFO
    messages.add_message(request, level, outcome.message)
    for warning in outcome.warnings:
        messages.warning(request, warning)


def write(command: BaseCommand, outcome: Outcome) -> None:
    """The message on stdout, each warning on stderr (the exit status stays 0: it was done)."""
    command.stdout.write(outcome.message)
    for warning in outcome.warnings:
        command.stderr.write(warning, style_func=command.style.WARNING)
