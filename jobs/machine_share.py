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
``threads`` is what the node reported of its renderers (a render node's ``--threads``,
a worker's ``RENDER_THREADS``; 0: every core), the manager's ``RENDER_THREADS`` for a node
that did not say. Frames done come one at
a time from a render worker (``services.frame_done``) and in batches from render nodes'
events (``event_sql.finish_frames``): a batch costs three queries, whatever its size.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from clusters.models import ClusterNode

from .models import Task, TaskAttempt

Row = tuple[int, int, float]  # a frame done: its chunk's id, its number, its seconds


def _overlap(
    rows: Iterable[tuple[datetime, datetime | None]], start: datetime, end: datetime
) -> float:
    """Seconds of ``rows`` (attempts' start and end, None: running) within start..end."""
    busy = 0.0
    for began, ended in rows:
        busy += max(0.0, (min(ended or end, end) - max(began, start)).total_seconds())
    return busy


def full_node_costs(
    frames: Sequence[Row], started: Mapping[tuple[int, int], datetime | None] | None = None
) -> dict[tuple[int, int], float]:
    """Each frame's seconds scaled to its node's share with every slot busy (see the
    module's docstring), by (chunk id, number); three queries for any number of frames
    (the event drain passes a whole batch). A frame rendered from when ``started`` says,
    else for its seconds until now (a batch's frames ended moments before it arrived)."""
    now, started = timezone.now(), started or {}
    costs = {(task, number): seconds for task, number, seconds in frames}
    chunks = {
        pk: (node, cluster)
        for pk, node, cluster in Task.objects.filter(pk__in={t for t, _, _ in frames})
        .exclude(node="")
        .values_list("pk", "node", "job__cluster_id")
    }
    facts = _node_facts(set(chunks.values()))
    spans = {}
    for task, number, seconds in frames:
        if seconds > 0 and chunks.get(task) in facts:
            latest = now - timedelta(seconds=seconds)
            start = min(started.get((task, number)) or latest, latest)
            spans[(task, number)] = (start, start + timedelta(seconds=seconds))
    if not spans:
        return costs
    attempts: dict[str, list[tuple[datetime, datetime | None]]] = {}
    rows = (
        TaskAttempt.objects.filter(
            node__in={chunks[t][0] for t, _ in spans},
            started_at__lt=max(end for _, end in spans.values()),
        )
        .filter(
            Q(finished_at__isnull=True)
            | Q(finished_at__gt=min(start for start, _ in spans.values()))
        )
        .values_list("node", "started_at", "finished_at")
    )
    for name, began_at, ended_at in rows:
        if began_at is not None:
            attempts.setdefault(name, []).append((began_at, ended_at))
    for (task, number), (start, end) in spans.items():
        node = chunks[task]
        cores, slots, reported = facts[node]
        seconds = costs[(task, number)]
        mean = _overlap(attempts.get(node[0], []), start, end) / seconds
        running = min(float(slots), max(1.0, mean))  # an attempt left open holds no slot
        threads = (settings.RENDER_THREADS if reported is None else reported) or cores
        costs[(task, number)] = (
            seconds * min(threads, cores / running) / min(threads, cores / slots)
        )
    return costs


def _node_facts(
    nodes: set[tuple[str, int]],
) -> dict[tuple[str, int], tuple[int, int, int | None]]:
    """(cores, slots, renderer threads or None) of each (node, cluster) as the node
    reported them; a cloud VM's chunks name it by its address."""
    if not nodes:
        return {}
    rows = ClusterNode.objects.filter(
        Q(name__in={n for n, _ in nodes}) | Q(ip_address__in=_addresses({n for n, _ in nodes})),
        cluster_id__in={c for _, c in nodes},
    ).values_list("name", "ip_address", "cluster_id", "cpu_count", "concurrency", "render_threads")
    facts = {}
    for name, address, cluster, cores, slots, threads in rows:
        if cores and slots:
            for key in ((name, cluster), (address, cluster)):
                if key in nodes:
                    facts[key] = (cores, slots, threads)
    return facts


def _addresses(names: set[str]) -> list[str]:
    """The names that read as IP addresses."""
    found = []
    for name in names:
        try:
            found.append(str(ipaddress.ip_address(name)))
        except ValueError:
            continue
    return found
