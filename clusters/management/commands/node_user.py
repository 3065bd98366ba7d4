"""The Redis user of a cluster's render nodes: ``manage.py node_user ID [--remove|--rules]``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from clusters import node_users
from clusters.management.commands.cluster import find


class Command(BaseCommand):
    help = (
        "Give a cluster's render nodes a Redis user of their own that reaches the cluster's "
        "queue and the events queue (publishing only) and nothing else, and print the broker URL "
        "with its new password (shown once; running it again makes a new one). --remove "
        "deletes the user; --rules prints its ACL rules for a Redis you manage yourself."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("id", metavar="ID", help="Cluster id or name.")
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--remove", action="store_true", help="Delete the node user.")
        group.add_argument("--rules", action="store_true", help="Print the ACL rules only.")

    def handle(self, *args: Any, **options: Any) -> None:
        cluster = find(options["id"])
        if options["rules"]:
            name = node_users.USER_PREFIX + cluster.name
            rules = " ".join(node_users.acl_rules(cluster))
            self.stdout.write(f"ACL SETUSER {name} reset on >PASSWORD {rules}")
            return
        try:
            if options["remove"]:
                if not node_users.remove_node_user(cluster):
                    raise CommandError(f"Cluster {cluster.name} has no node user.")
                self.stdout.write(
                    f"Removed the node user of {cluster.name}; its queue {cluster.queue} is "
                    "back under the manager's own broker credential."
                )
                return
            user = node_users.create_node_user(cluster)
        except node_users.NodeUserError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"Render nodes of {cluster.name} connect as {user.name}. Its password is shown "
            "this once; keep it where the nodes are started:\n\n"
            f"  make node BROKER='{user.broker_url}' MANAGER=<the manager's address> "
            f"CLUSTER={cluster.name} PRIVATE_QUEUE=1\n"
        )
