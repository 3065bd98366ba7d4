"""Suspending a cluster for maintenance: its nodes take no new chunks; running ones finish.

The rule itself is kept where chunks are taken (``jobs.runner.claim`` and ``jobs.dispatch``
read ``Cluster.suspended_at``). Resuming sends ``cluster_resumed`` after the commit: the
jobs app, which sits above clusters, listens and sends the waiting chunks again.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone

from renderhub.outcome import Outcome

from .models import Cluster

if TYPE_CHECKING:
    from django.contrib.auth.models import User

log = logging.getLogger(__name__)

cluster_resumed = Signal()  # cluster_id: its queued chunks may be taken again


def suspend(cluster: Cluster, user: User | None = None) -> Outcome:
    """Stop the cluster's nodes from starting chunks; the chunks they run now finish."""
    from .services import record

    with transaction.atomic():
        changed = Cluster.objects.filter(pk=cluster.pk, suspended_at__isnull=True).update(
            suspended_at=timezone.now()
        )
        if not changed:
            return Outcome(False, f"Cluster {cluster.name} is suspended already.")
        message = "suspended: its nodes take no new chunks; running chunks finish"
        record(cluster, "suspend", message, user)
    log.info("cluster %s suspended", cluster.name)
    return Outcome(
        True, f"Suspended cluster {cluster.name}: its nodes take no new chunks.", changed
    )


def resume(cluster: Cluster, user: User | None = None) -> Outcome:
    """Let the cluster's nodes take chunks again; its queued chunks are sent again."""
    from .services import record

    with transaction.atomic():
        changed = Cluster.objects.filter(pk=cluster.pk, suspended_at__isnull=False).update(
            suspended_at=None
        )
        if not changed:
            return Outcome(False, f"Cluster {cluster.name} is not suspended.")
        record(cluster, "resume", "resumed: its nodes take chunks again", user)
        transaction.on_commit(
            lambda: cluster_resumed.send_robust(sender=Cluster, cluster_id=cluster.pk)
        )
    log.info("cluster %s resumed", cluster.name)
    return Outcome(True, f"Resumed cluster {cluster.name}: its nodes take chunks again.", changed)
