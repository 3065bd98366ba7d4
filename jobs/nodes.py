"""The node page: one machine of a cluster, what it renders now and what it rendered.

It sits with the jobs app because it is mostly chunks; the node itself is a cluster's
row. The page is for whoever may see the cluster (every signed-in user: clusters are
shared by all projects), but the chunks, attempts, logs and blocks on it are only those
of jobs the user may see: a shared node never shows another project's work.

Workers send no log of their own; what a node did is in the agent logs of its chunks,
which the page shows (the latest one inline, every attempt's a link away).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone

from clusters.choices import Backend
from clusters.models import ClusterNode
from clusters.queries import node_is_online

from .choices import TaskState
from .models import NodeBlock, RenderJob, Task, TaskAttempt
from .queries import visible_jobs

if TYPE_CHECKING:
    from .queries import User

ATTEMPTS_PER_PAGE = 50


def get_node(cluster_pk: int, key: str) -> ClusterNode:
    """The cluster's node by name (or by id); 404 when the cluster has no such node."""
    nodes = ClusterNode.objects.select_related("cluster").filter(cluster_id=cluster_pk)
    node = nodes.filter(name=key).first()
    if node is None and key.isdigit():
        node = nodes.filter(pk=int(key)).first()
    if node is None:
        raise Http404("This cluster has no such node.")
    return node


def task_node_names(node: ClusterNode) -> list[str]:
    """What chunks record as their node: a worker's name; a cloud VM's IP address too."""
    names = [node.name]
    if node.cluster.backend == Backend.BATCHCOMPUTE and node.ip_address:
        names.append(node.ip_address)
    return names


def _jobs(user: User, node: ClusterNode) -> QuerySet[RenderJob]:
    return visible_jobs(user).filter(cluster_id=node.cluster_id).values("pk")  # type: ignore[return-value]


def node_page(user: User, node: ClusterNode, page_number: str | None) -> dict[str, Any]:
    """The node's facts, its running chunks, its attempts (paged) and the blocks on it."""
    names = task_node_names(node)
    jobs = _jobs(user, node)
    cutoff = timezone.now() - timedelta(seconds=settings.NODE_OFFLINE_AFTER)
    node.online = node_is_online(node, cutoff)  # type: ignore[attr-defined]
    running = list(
        Task.objects.filter(job__in=jobs, node__in=names, state=TaskState.RUNNING)
        .select_related("job")
        .order_by("started_at", "pk")
    )
    attempts = (
        TaskAttempt.objects.filter(job__in=jobs, node__in=names)
        .select_related("job", "task")
        .order_by("-started_at", "-pk")
    )
    page = Paginator(attempts, ATTEMPTS_PER_PAGE).get_page(page_number)
    blocks = list(
        NodeBlock.objects.filter(job__in=jobs, node__in=names)
        .select_related("job")
        .order_by("-updated_at")
    )
    return {
        "node": node,
        "cluster": node.cluster,
        "running": running,
        "attempts": page,
        "blocks": blocks,
        "latest_log": _latest_agent_log(running, list(page.object_list)),
    }


def _latest_agent_log(running: list[Task], attempts: list[TaskAttempt]) -> dict[str, Any] | None:
    """The agent log tail of the chunk the node ran last (live from the task while it runs)."""
    if running:
        task = running[-1]
        return {"task": task, "job": task.job, "number": None, "text": task.agent_log_tail}
    if attempts and attempts[0].number:
        attempt = attempts[0]
        return {
            "task": attempt.task,
            "job": attempt.job,
            "number": attempt.number,
            "text": attempt.agent_log_tail,
        }
    return None
