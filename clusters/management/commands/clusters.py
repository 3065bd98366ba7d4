"""List clusters: ``manage.py clusters [--sync]``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from clusters import services
from clusters.models import Cluster
from renderhub import cli


class Command(BaseCommand):
    help = "List clusters with their state and nodes (actual/desired for BatchCompute)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--sync", action="store_true", help="Refresh BatchCompute clusters first."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["sync"]:
            services.sync_all()
        rows = [services.summary(c) for c in Cluster.objects.select_related("image")]
        if not rows:
            self.stdout.write("No clusters.")
            return
        cli.print_table(self.stdout, list(rows[0]), (r.values() for r in rows), right=(0,))
