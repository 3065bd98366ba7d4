"""Apply render nodes' events: ``manage.py node_events`` (runs until stopped)."""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from jobs.event_drain import DrainNameTaken, drain
from renderhub.node_events import events_connection


class Command(BaseCommand):
    help = (
        "Drain the renderhub.events queue: apply the nodes' events in batches (one "
        "database connection for every node), record their reports and answer their claims. "
        "Runs until SIGINT or SIGTERM."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--batch", type=int, default=500, help="Most messages applied at once (500)."
        )
        parser.add_argument(
            "--claim-threads",
            type=int,
            default=4,
            help="Threads answering render nodes' claims beside the events (4), each with "
            "its own database connection.",
        )
        parser.add_argument(
            "--name",
            default="default",
            help="This drain's name; drains side by side need their own (Redis keeps each "
            "one's batch under it until applied).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        options_ = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {})
        with events_connection(settings.CELERY_BROKER_URL, options_) as connection:
            self.stdout.write("Applying node events; stop with Ctrl-C.")
            try:
                drain(
                    connection,
                    stop,
                    max_messages=options["batch"],
                    name=options["name"],
                    claim_threads=options["claim_threads"],
                )
            except DrainNameTaken as exc:
                raise CommandError(str(exc)) from None
