"""Sending a job's chunks to its cluster's backend, right after commit or again later."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from clusters.choices import Backend, NodeState
from clusters.models import ClusterNode

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
    """Hand the job's queued, not yet dispatched tasks to its cluster's backend."""
    job = RenderJob.objects.select_related("cluster", "project").get(pk=job_id)
    if not job.is_active or job.paused_at or job.waiting or job.cluster.suspended_at:
        return 0  # resuming, or the jobs it runs after finishing, sends them (jobs.scheduling)
    if job.max_nodes and job.cluster.backend == Backend.CELERY:
        return _dispatch_limited(job)
    tasks = list(job.tasks.filter(state=TaskState.QUEUED, queued_at__isnull=True))
    if tasks:
        get_backend(job.cluster.backend).dispatch(job, tasks)
    return len(tasks)


def _dispatch_limited(job: RenderJob) -> int:
    """Send no more of the job's chunks than its ``max_nodes`` less those running or sent
    already; each chunk that ends sends the next (``services.task_finished``). The job row
    is locked so that two chunks ending at once do not both fill the same free place."""
    with transaction.atomic():
        RenderJob.objects.select_for_update().filter(pk=job.pk).first()
        in_flight = job.tasks.filter(
            Q(state=TaskState.RUNNING) | Q(state=TaskState.QUEUED, queued_at__isnull=False)
        ).count()
        free = max(0, (job.max_nodes or 0) - in_flight)
        waiting = job.tasks.filter(state=TaskState.QUEUED, queued_at__isnull=True)
        tasks = list(waiting.order_by("index")[:free])
        if tasks:
            get_backend(job.cluster.backend).dispatch(job, tasks)
    return len(tasks)


def dispatch_pending() -> int:
    """Dispatch queued chunks that were never sent (crash after commit, broker down), and
    send again those whose message a broker crash lost: still unclaimed long after they were
    sent while a node of their cluster sits idle. A duplicate message is harmless: only one
    delivery can claim a chunk."""
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
    job_ids = set(
        Task.objects.filter(
            state=TaskState.QUEUED, queued_at__isnull=True, job__state__in=ACTIVE_JOB_STATES
        ).values_list("job_id", flat=True)
    )
    return sum(dispatch(job_id) for job_id in sorted(job_ids))
