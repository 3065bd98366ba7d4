"""Show one cluster: ``manage.py cluster ID [--sync] [--log N]``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from clusters import services
from clusters.models import Cluster
from renderhub import cli
from renderhub.compute import ComputeError


class Command(BaseCommand):
    help = "Show a cluster: its settings, nodes (cloud VMs) and operation log."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("id", metavar="ID", help="Cluster id or name.")
        parser.add_argument("--sync", action="store_true", help="Refresh from BatchCompute first.")
        parser.add_argument(
            "--log", type=int, default=20, metavar="N", help="Operation log lines (default 20)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        cluster = find(options["id"])
        if options["sync"]:
            try:
                cluster = services.sync(cluster)
            except ComputeError as exc:
                raise CommandError(f"Syncing {cluster} failed: {exc}") from None
            cluster.refresh_from_db()
        fields = [(k, v) for k, v in services.summary(cluster).items() if k != "id"]
        fields += [
            ("image", f"{cluster.image} ({cluster.image.image_id})"),
            ("disk", f"{cluster.disk_size_gb} GB {cluster.disk_type or 'default'}"),
            ("max nodes per job", cluster.max_nodes),
            ("synced", cli.format_time(cluster.synced_at)),
        ]
        if cluster.spot and cluster.spot_price_limit is not None:
            fields.append(("spot price limit", cluster.spot_price_limit))
        if cluster.sync_error:
            fields.append(("sync error", cluster.sync_error))
        width = max(len(label) for label, _ in fields) + 1
        self.stdout.write(f"cluster #{cluster.pk}")
        for label, value in fields:
            self.stdout.write(f"{label + ':':<{width}} {value}")
        nodes = list(cluster.nodes.all())
        self.stdout.write("")
        if nodes:
            cli.print_table(
                self.stdout,
                ["node", "state", "cloud state", "ip", "created", "last seen", "error"],
                (
                    [
                        n.name,
                        n.state,
                        n.cloud_state or "-",
                        n.ip_address or "-",
                        cli.format_time(n.launched_at or n.created_at),
                        cli.format_time(n.last_seen),
                        cli.first_line(n.error) or "-",
                    ]
                    for n in nodes
                ),
            )
        else:
            self.stdout.write("No nodes.")
        operations = list(cluster.operations.select_related("user")[: max(0, options["log"])])
        if operations:
            self.stdout.write("\nOperation log (newest first):")
            for op in operations:
                who = f" ({op.user})" if op.user else ""
                self.stdout.write(f"  {cli.format_time(op.at)} {op.source}{who}: {op.message}")


def find(ident: str) -> Cluster:
    try:
        return services.find(ident)
    except Cluster.DoesNotExist as exc:
        raise CommandError(str(exc)) from None
