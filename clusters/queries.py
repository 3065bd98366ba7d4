"""Read-side queries of the cluster pages and the dashboard: clusters with their nodes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.shortcuts import get_object_or_404
from django.utils import timezone

from .choices import NodeState
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


def get_cluster(pk: int) -> Cluster:
    return _with_nodes(get_object_or_404(Cluster.objects.prefetch_related("nodes"), pk=pk))
