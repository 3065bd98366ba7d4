"""A Redis user per cluster for its render nodes: its queue, its events, nothing else.

A render node's only credential is the broker's (issue 15). With one Redis password for
every node, a stolen one reads every cluster's queue. :func:`create_node_user` gives a
cluster its own Redis ACL user and moves the cluster's queue under its own key prefix
(``renderhub.cluster.<name>:``, kombu's ``global_keyprefix``: the queue, its bindings and
its unacked messages), so the user can be confined to:

* ``~renderhub.cluster.<name>:*``: the cluster's queue and kombu's keys for it;
* ``~renderhub.events:renderhub.node.<name>.*``: the answers to its own nodes' claims;
* ``renderhub.events:renderhub.events``, the events list, through a selector that allows
  ``LPUSH`` only: it can publish events and claims, and neither read nor drop any;
* channels ``&renderhub.cluster.<name>:*`` only, and no dangerous command (``KEYS``,
  ``SCAN``, ``MONITOR``, ``CONFIG``, ``ACL``, ``FLUSHALL``, ``INFO``…).

``tests/security/test_node_broker_user.py`` renders a job with such a user and shows what
it cannot read. The manager's own Redis user must be allowed ``ACL SETUSER``.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit, urlunsplit

from django.conf import settings
from django.db import transaction

from renderhub.node_events import EVENTS_QUEUE, REDIS_OPTIONS

from .models import Cluster
from .suspension import cluster_resumed

if TYPE_CHECKING:
    from django.contrib.auth.models import User

log = logging.getLogger(__name__)

USER_PREFIX = "renderhub-node-"


class NodeUserError(Exception):
    """The broker is not Redis, or Redis refused (the manager's user may not manage ACLs)."""


@dataclass(frozen=True)
class NodeUser:
    name: str
    password: str
    broker_url: str  # the manager's broker URL with this user and password

    @property
    def masked_url(self) -> str:
        return self.broker_url.replace(quote(self.password, safe=""), "…")


def acl_rules(cluster: Cluster) -> list[str]:
    """The rules of the cluster's node user (without ``on`` and its password)."""
    events = str(REDIS_OPTIONS["global_keyprefix"])
    prefix = f"renderhub.cluster.{cluster.name}:"
    return [
        "resetkeys",
        f"~{prefix}*",
        f"~{events}renderhub.node.{cluster.name}.*",
        "resetchannels",
        f"&{prefix}*",
        "-@all",
        "+@all",
        "-@dangerous",
        "-scan",
        "-randomkey",
        # The events list through a selector of its own: LPUSH and nothing else (a write
        # permission alone would let DEL, LTRIM or EXPIRE drop every node's events).
        f"(%W~{events}{EVENTS_QUEUE} +lpush)",
    ]


def _redis() -> Any:
    import redis

    url = settings.CELERY_BROKER_URL
    if not url.startswith(("redis://", "rediss://")):
        raise NodeUserError(
            "Render nodes reach the manager through Redis: set CELERY_BROKER_URL to it first."
        )
    return redis.Redis.from_url(url)


def create_node_user(cluster: Cluster, user: User | None = None) -> NodeUser:
    """A new password for the cluster's node user (made if missing); the cluster's queue
    moves under its own prefix. The password is shown once: RenderHub does not keep it."""
    import redis

    from .services import record

    name = USER_PREFIX + cluster.name
    password = secrets.token_urlsafe(32)
    client = _redis()
    try:
        rules = ["reset", "on", f">{password}", *acl_rules(cluster)]
        client.execute_command("ACL", "SETUSER", name, *rules)
        # Connections made with the old password are closed: a new password revokes it.
        client.execute_command("CLIENT", "KILL", "USER", name)
    except redis.RedisError as exc:
        raise NodeUserError(f"Redis refused to set up the user {name}: {exc}") from None
    finally:
        client.close()
    moved = not cluster.broker_user
    with transaction.atomic():
        Cluster.objects.filter(pk=cluster.pk).update(broker_user=name)
        cluster.broker_user = name
        what = "set up" if moved else "given a new password (the old one no longer works)"
        record(cluster, "node-user", f"node user {name} {what}", user)
        if moved:
            _send_again(cluster)
    log.info("cluster %s: node user %s set up", cluster.name, name)
    return NodeUser(name, password, _with_user(settings.CELERY_BROKER_URL, name, password))


def remove_node_user(cluster: Cluster, user: User | None = None) -> bool:
    """Delete the cluster's node user; its queue goes back under no prefix (for render
    workers that hold the manager's own broker credential). False if it had none."""
    import redis

    from .services import record

    if not cluster.broker_user:
        return False
    client = _redis()
    try:
        client.execute_command("ACL", "DELUSER", cluster.broker_user)
    except redis.RedisError as exc:
        raise NodeUserError(f"Redis refused to delete {cluster.broker_user}: {exc}") from None
    finally:
        client.close()
    with transaction.atomic():
        record(cluster, "node-user", f"node user {cluster.broker_user} removed", user)
        Cluster.objects.filter(pk=cluster.pk).update(broker_user="")
        cluster.broker_user = ""
        _send_again(cluster)
    return True


def _send_again(cluster: Cluster) -> None:
    """Chunks sent to the queue's old place are sent again to its new one, as when a
    suspended cluster resumes (a message left at the old place is a harmless duplicate:
    only one delivery can claim a chunk)."""
    pk = cluster.pk
    transaction.on_commit(lambda: cluster_resumed.send_robust(sender=Cluster, cluster_id=pk))


def _with_user(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
