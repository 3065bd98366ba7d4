"""Sending chunks to the nodes: the manager decides which chunk each free slot gets.

On a Celery cluster a chunk's message is sent only when a node slot is free for it, so the
cluster's queue never holds more messages than its nodes can start at once; neither broker
priorities nor worker prefetch can then change the order. The order is RenderHub's own
(:func:`plan`): the highest job priority first; at equal priority the projects take turns
(the project whose chunk started or was sent longest ago goes next, so one huge job does
not starve the others); within a project, the older job first; a job's ``max_nodes`` caps
its chunks in flight. Slots free up when a chunk ends (``services.task_finished``) and
when a node reports itself idle (``heartbeat.report``); beat's ``dispatch_pending`` is the
safety net for both.

A BatchCompute cloud job takes all its chunks at once: its job's chunks are sent together.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Max, Q, QuerySet
from django.utils import timezone

from clusters.choices import Backend, NodeState
from clusters.models import Cluster, ClusterNode

from .backends import get_backend
from .choices import ACTIVE_JOB_STATES, TaskState
from .models import RenderJob, Task

log = logging.getLogger(__name__)


def enqueue_dispatch(job_id: int) -> None:
    """Send the job's new chunks right after commit; if that fails, dispatch_pending retries."""
    try:
        dispatch(job_id)
    except Exception:  # broker down or slow: the rows stay undispatched, never lost
        log.exception("could not dispatch job %s now; the next dispatch_pending will", job_id)


def dispatch(job_id: int) -> int:
    """Send what may start now on the job's cluster (every job there competes for its free
    slots); returns how many chunks were sent."""
    job = RenderJob.objects.select_related("cluster", "project").get(pk=job_id)
    if job.cluster.backend == Backend.CELERY:
        return dispatch_cluster(job.cluster_id)
    if not job.is_active or job.paused_at or job.waiting or job.cluster.suspended_at:
        return 0  # resuming, or the jobs it runs after finishing, sends them (jobs.scheduling)
    tasks = list(job.tasks.filter(state=TaskState.QUEUED, queued_at__isnull=True))
    if tasks:
        get_backend(job.cluster.backend).dispatch(job, tasks)
    return len(tasks)


def dispatch_cluster(cluster_id: int) -> int:
    """Fill the cluster's free slots with the chunks :func:`plan` picks.

    The cluster row is locked while the slots are counted and filled, so two chunks ending
    at once never both hand out the same free slot. A message sent for a transaction that
    then rolls back is a harmless duplicate: only one delivery can claim a chunk."""
    with transaction.atomic():
        cluster = Cluster.objects.select_for_update().filter(pk=cluster_id).first()
        if cluster is None or cluster.suspended_at or cluster.backend != Backend.CELERY:
            return 0
        picks = plan(cluster)
        backend = get_backend(cluster.backend)
        jobs = RenderJob.objects.select_related("cluster").in_bulk({t.job_id for t in picks})
        for task in picks:
            backend.dispatch(jobs[task.job_id], [task])
    if picks:
        log.debug("cluster %s: sent %d chunks", cluster.name, len(picks))
    return len(picks)


def _slots(cluster: Cluster) -> int:
    """The slots of the cluster's online nodes (each its worker's concurrency)."""
    cutoff = timezone.now() - timedelta(seconds=settings.NODE_OFFLINE_AFTER)
    concurrency = (
        ClusterNode.objects.filter(cluster=cluster, last_seen__gte=cutoff)
        .exclude(state=NodeState.OFFLINE)
        .values_list("concurrency", flat=True)
    )
    return sum(max(1, c or 1) for c in concurrency)


def _in_flight(cluster: Cluster) -> QuerySet[Task]:
    """Chunks holding a slot: running ones (a paused job's running chunks still run), and
    ones sent lately and not yet taken, of jobs that may start them (a paused job's sent
    message is skipped by the node, so it holds none). A message is taken within moments
    of being sent to a free slot; one still untaken after RENDER_SENT_HOLDS_SLOT seconds is
    stuck (a worker that died holding it) and leaves its slot to the next chunk, until
    ``dispatch_pending`` sends it again."""
    recent = timezone.now() - timedelta(seconds=settings.RENDER_SENT_HOLDS_SLOT)
    may_start = Q(
        state=TaskState.QUEUED,
        queued_at__gte=recent,
        job__paused_at__isnull=True,
        job__waiting=False,
    )
    return Task.objects.filter(
        Q(state=TaskState.RUNNING) | may_start,
        job__cluster=cluster,
        job__state__in=ACTIVE_JOB_STATES,
    )


@dataclass
class _Candidate:
    pk: int
    project_id: int
    priority: int
    waiting: int  # undispatched queued chunks
    room: int  # chunks it may still have in flight (max_nodes)


def plan(cluster: Cluster) -> list[Task]:
    """The chunks to send now, in order, one per free slot (see the module's rules)."""
    flying = dict(
        _in_flight(cluster).values("job_id").annotate(n=Count("pk")).values_list("job_id", "n")
    )
    free = _slots(cluster) - sum(flying.values())
    if free <= 0:
        return []
    startable = RenderJob.objects.active().filter(
        cluster=cluster, paused_at__isnull=True, waiting=False
    )
    undispatched = Task.objects.filter(
        job__in=startable, state=TaskState.QUEUED, queued_at__isnull=True
    )
    waiting = dict(undispatched.values("job_id").annotate(n=Count("pk")).values_list("job_id", "n"))
    if not waiting:
        return []
    candidates = [
        _Candidate(
            pk=pk,
            project_id=project_id,
            priority=priority,
            waiting=waiting[pk],
            room=(max_nodes - flying.get(pk, 0)) if max_nodes else free,
        )
        for pk, project_id, priority, max_nodes in RenderJob.objects.filter(
            pk__in=waiting
        ).values_list("pk", "project_id", "priority", "max_nodes")
    ]
    turns = _last_turns(cluster)
    order: list[int] = []
    for _ in range(free):
        open_ = [c for c in candidates if c.waiting > 0 and c.room > 0]
        if not open_:
            break
        top = max(c.priority for c in open_)
        level = [c for c in open_ if c.priority == top]
        project = min({c.project_id for c in level}, key=lambda p: (turns.get(p, datetime.min), p))
        chosen = min((c for c in level if c.project_id == project), key=lambda c: c.pk)
        chosen.waiting -= 1
        chosen.room -= 1
        # This project just had its turn: it now goes after every other one.
        turns[project] = max([*turns.values(), datetime.min]) + timedelta(microseconds=1)
        order.append(chosen.pk)
    return _tasks_in_order(undispatched, order)


def _last_turns(cluster: Cluster) -> dict[int, datetime]:
    """When each project with a job active on the cluster last had a chunk started or sent
    there (naive UTC, for comparing; projects never served are missing: they go first)."""
    rows = (
        RenderJob.objects.active()
        .filter(cluster=cluster)
        .values("project_id")
        .annotate(started=Max("tasks__started_at"), sent=Max("tasks__queued_at"))
    )
    turns: dict[int, datetime] = {}
    for row in rows:
        seen = [t for t in (row["started"], row["sent"]) if t is not None]
        if seen:
            turns[row["project_id"]] = max(seen).replace(tzinfo=None)
    return turns


def _tasks_in_order(undispatched: QuerySet[Task], order: list[int]) -> list[Task]:
    """Each picked job's next undispatched chunks by index, in the order they were picked."""
    wanted: dict[int, int] = {}
    for pk in order:
        wanted[pk] = wanted.get(pk, 0) + 1
    queues: dict[int, list[Task]] = {}
    for pk, count in wanted.items():
        queues[pk] = list(undispatched.filter(job_id=pk).order_by("index")[:count])
    return [queues[pk].pop(0) for pk in order if queues[pk]]


def dispatch_pending() -> int:
    """Dispatch queued chunks that were never sent (crash after commit, broker down, no
    free slot until now), and send again those whose message a broker crash lost: still
    unclaimed long after they were sent while a node of their cluster sits idle. A duplicate
    message is harmless: only one delivery can claim a chunk."""
    now = timezone.now()
    idle = ClusterNode.objects.filter(
        state=NodeState.IDLE, last_seen__gte=now - timedelta(seconds=settings.NODE_OFFLINE_AFTER)
    )
    Task.objects.filter(
        state=TaskState.QUEUED,
        queued_at__lt=now - timedelta(seconds=settings.RENDER_REDISPATCH_AFTER),
        job__state__in=ACTIVE_JOB_STATES,
        job__paused_at__isnull=True,
        job__waiting=False,
        job__cluster__suspended_at__isnull=True,
        job__cluster__backend=Backend.CELERY,
        job__cluster__in=idle.values("cluster"),
    ).update(queued_at=None)
    pending = Task.objects.filter(
        state=TaskState.QUEUED, queued_at__isnull=True, job__state__in=ACTIVE_JOB_STATES
    )
    clusters = set(
        pending.filter(job__cluster__backend=Backend.CELERY).values_list(
            "job__cluster_id", flat=True
        )
    )
    sent = sum(dispatch_cluster(pk) for pk in sorted(clusters))
    cloud_jobs = set(
        pending.exclude(job__cluster__backend=Backend.CELERY).values_list("job_id", flat=True)
    )
    return sent + sum(dispatch(pk) for pk in sorted(cloud_jobs))


def dispatch_for_idle_node(cluster_id: int) -> int:
    """A node reported itself idle: fill the cluster's free slots if chunks wait unsent."""
    waiting = Task.objects.filter(
        job__cluster_id=cluster_id,
        job__state__in=ACTIVE_JOB_STATES,
        state=TaskState.QUEUED,
        queued_at__isnull=True,
    )
    try:
        return dispatch_cluster(cluster_id) if waiting.exists() else 0
    except Exception:  # broker down: the node's next report, or dispatch_pending, tries again
        log.exception("could not dispatch to cluster %s now", cluster_id)
        return 0
