"""Delete a cluster: ``manage.py cluster_delete ID``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from clusters import services
from clusters.management.commands.cluster import find
from renderhub.compute import ComputeError


class Command(BaseCommand):
    help = (
        "Delete a cluster (and its BatchCompute cluster); it must have no active jobs, and no "
        "BatchCompute job that has not ended unless --force (which stops them first)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("id", metavar="ID", help="Cluster id or name.")
        parser.add_argument(
            "--force",
            action="store_true",
            help="Stop its BatchCompute jobs that have not ended, then delete it.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        cluster = find(options["id"])
        try:
            services.delete(cluster, force=options["force"])
        except ComputeError as exc:
            raise CommandError(f"Deleting {cluster} failed: {exc}") from None
        self.stdout.write(f"Cluster {cluster.name} is {cluster.state}.")
