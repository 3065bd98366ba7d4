"""Read-side queries of the cluster pages and the dashboard: clusters with their nodes."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Max, Q, Sum
from django.shortcuts import get_object_or_404
from django.utils import timezone

from renderhub.htmx import poll_etag

from .choices import ClusterState, NodeState
from .models import Cluster, ClusterNode


def node_is_online(node: ClusterNode, cutoff: Any) -> bool:
    return bool(node.last_seen and node.last_seen >= cutoff and node.state != NodeState.OFFLINE)


def _with_nodes(cluster: Cluster) -> Cluster:
    """Set ``node_list`` (each node with ``online``) and ``online_count`` on the cluster."""
    cutoff = timezone.now() - timedelta(seconds=settings.NODE_OFFLINE_AFTER)
    nodes = list(cluster.nodes.all())
    for node in nodes:
        node.online = node_is_online(node, cutoff)  # type: ignore[attr-defined]
    cluster.node_list = nodes  # type: ignore[attr-defined]
    cluster.online_count = sum(n.online for n in nodes)  # type: ignore[attr-defined]
    return cluster


def clusters_with_nodes() -> list[Cluster]:
    """Every cluster with its nodes, in two queries."""
    return [_with_nodes(c) for c in Cluster.objects.prefetch_related("nodes")]


def clusters_version(pk: int | None = None) -> str:
    """The ETag of the clusters list (or of one cluster's nodes panel): one aggregate over
    the clusters and their nodes; a node's heartbeat (CPU, memory, state) moves
    ``last_seen``, and the count of nodes online moves when one falls silent."""
    cutoff = timezone.now() - timedelta(seconds=settings.NODE_OFFLINE_AFTER)
    clusters = Cluster.objects.all() if pk is None else Cluster.objects.filter(pk=pk)
    summary = clusters.order_by().aggregate(
        clusters=Count("id", distinct=True),
        updated=Max("updated_at"),
        desired=Sum("desired_nodes"),
        node_count=Count("nodes"),
        node_ids=Sum("nodes__id"),
        seen=Max("nodes__last_seen"),
        online=Count("nodes", filter=Q(nodes__last_seen__gte=cutoff)),
        **{f"nodes_{state}": Count("nodes", filter=Q(nodes__state=state)) for state in NodeState},
        **{
            f"clusters_{state}": Count("id", distinct=True, filter=Q(state=state))
            for state in ClusterState
        },
    )
    if pk is not None and not summary["clusters"]:
        return ""  # no such cluster: the page's own 404
    minute = int(time.time() // 60)  # "last seen 3 minutes ago"
    return poll_etag("clusters", pk, sorted(summary.items()), minute)


def get_cluster(pk: int) -> Cluster:
    return _with_nodes(get_object_or_404(Cluster.objects.prefetch_related("nodes"), pk=pk))
