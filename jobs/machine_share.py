"""A frame's cost as if its node were full: the measure adaptive chunks are cut by.

A renderer that may use every core (``RENDER_THREADS`` 0, the default) renders a frame
faster while the node's other slots are idle: alone on a two-slot node it has both cores,
and its frame takes about half what it takes while both slots render. Cut by those wall
seconds, the next job of the scene would take the frames rendered alone (typically a job's
last, dear ones, rendered after the other slot ran out of work) for cheap ones, and a
slot would idle at its end. So each frame also records its seconds scaled to the share of
the node it would have had with every slot rendering: ``seconds * share(k) / share(S)``,
where ``S`` is the node's slots, ``k`` how many renderers ran on it on average while the
frame rendered (from the chunk attempts' times), and ``share(k) = min(threads, cores / k)``
the cores each of ``k`` renderers gets. With one thread per renderer and a core per slot
the share does not change and the cost is the wall time. A node that did not say its
cores and slots (an older node, a cloud VM before its first report) keeps the wall time.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from clusters.models import ClusterNode

from .models import Task, TaskAttempt


def renderers_while(node: str, start: datetime, end: datetime, slots: int) -> float:
    """The mean number of chunk attempts running on ``node`` between ``start`` and
    ``end``, at least 1 (the frame's own) and at most ``slots`` (an attempt left open by
    a vanished worker holds no slot)."""
    span = (end - start).total_seconds()
    if span <= 0:
        return 1.0
    rows = (
        TaskAttempt.objects.filter(node=node, started_at__lt=end)
        .filter(Q(finished_at__isnull=True) | Q(finished_at__gt=start))
        .values_list("started_at", "finished_at")
    )
    busy = 0.0
    for began, ended in rows:
        if began is None:
            continue
        overlap = (min(ended or end, end) - max(began, start)).total_seconds()
        busy += max(0.0, overlap)
    return min(float(slots), max(1.0, busy / span))


def full_node_seconds(task: Task, seconds: float, started_at: datetime | None) -> float:
    """``seconds`` of a frame of ``task`` scaled to its node's share with every slot busy
    (see the module's docstring); the frame began at ``started_at`` (when it was reported;
    else it ended now)."""
    if seconds <= 0 or not task.node:
        return seconds
    named = Q(name=task.node)
    if address := _address(task.node):
        named |= Q(ip_address=address)
    node = (
        ClusterNode.objects.filter(named, cluster_id=task.job.cluster_id)
        .values_list("cpu_count", "concurrency")
        .first()
    )
    cores, slots = node or (None, None)
    if not cores or not slots:
        return seconds
    start = started_at or timezone.now() - timedelta(seconds=seconds)
    running = renderers_while(task.node, start, start + timedelta(seconds=seconds), slots)
    threads = settings.RENDER_THREADS or cores
    return seconds * min(threads, cores / running) / min(threads, cores / slots)


def _address(name: str) -> str | None:
    """``name`` when it reads as an IP address (a cloud VM's chunks record its address)."""
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        return None
