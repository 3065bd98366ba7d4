"""Resize a cluster: ``manage.py cluster_resize ID N`` (0 keeps it but stops paying for VMs)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from clusters import services
from clusters.management.commands.cluster import find
from renderhub.compute import ComputeError


class Command(BaseCommand):
    help = "Change how many nodes (VMs) a cluster runs; 0 keeps the cluster without VMs."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("id", metavar="ID", help="Cluster id or name.")
        parser.add_argument("nodes", type=int, metavar="N", help="Nodes to run (0 or more).")

    def handle(self, *args: Any, **options: Any) -> None:
        cluster = find(options["id"])
        before = cluster.desired_nodes
        try:
            services.resize(cluster, options["nodes"])
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        except ComputeError as exc:
            raise CommandError(f"Resizing {cluster} failed: {exc}") from None
        self.stdout.write(
            f"Cluster {cluster.name}: {before} -> {cluster.desired_nodes} nodes ({cluster.state})"
        )
