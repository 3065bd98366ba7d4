"""Suspend a cluster for maintenance, or resume it: ``manage.py cluster_suspend ID [--resume]``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from clusters import services
from clusters.management.commands.cluster import find
from renderhub import outcome


class Command(BaseCommand):
    help = (
        "Suspend a cluster: its nodes take no new chunks (running chunks finish); "
        "--resume lets them take chunks again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("id", metavar="ID", help="Cluster id or name.")
        parser.add_argument("--resume", action="store_true", help="Resume a suspended cluster.")

    def handle(self, *args: Any, **options: Any) -> None:
        cluster = find(options["id"])
        operation = services.resume if options["resume"] else services.suspend
        outcome.write(self, operation(cluster))
