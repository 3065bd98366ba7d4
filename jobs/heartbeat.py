"""Render workers report themselves as cluster nodes, with CPU and memory use.

Part of the render worker (it counts the chunks this worker runs), so it lives with the
jobs app, above clusters whose ClusterNode rows it writes.

A thread in the worker's main process upserts one ClusterNode per ``render.<cluster>``
queue it consumes, every NODE_HEARTBEAT_SECONDS; the admin and pages show these rows.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Any

import psutil
from celery.signals import worker_init, worker_shutdown
from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from clusters.choices import NodeState
from renderhub.agent import bytecode
from renderhub.node.fork_guard import FORK_GUARD

log = logging.getLogger(__name__)

_state: dict[str, Any] = {"concurrency": 1, "hostname": "", "stop": threading.Event()}


def concurrency() -> int:
    return int(_state["concurrency"])


def hostname() -> str:
    """This process's worker node name (e.g. ``render@host``), once a worker started here."""
    return str(_state["hostname"])


def cluster_names(queues: list[str]) -> list[str]:
    return [q.removeprefix("render.") for q in queues if q.startswith("render.")]


def report(
    hostname: str,
    clusters: list[str],
    state: str | None = None,
    facts: dict[str, Any] | None = None,
) -> int:
    """Upsert the node rows of a worker; returns how many clusters it serves. ``facts``
    (CPU, memory, cores, slots, address) are this machine's unless a node sent its own."""
    from clusters.models import Cluster, ClusterNode

    from .choices import TaskState
    from .dispatch import dispatch_for_idle_node
    from .models import Task

    facts = facts or local_facts()
    # Busy means no free slot: an idle node with chunks still queued means lost messages.
    running = Task.objects.filter(node=hostname, state=TaskState.RUNNING).count()
    busy = running >= facts["concurrency"]
    values = {
        **facts,
        "state": state or (NodeState.BUSY if busy else NodeState.IDLE),
        "last_seen": timezone.now(),
    }
    known: set[str] = set()
    for cluster in Cluster.objects.filter(name__in=clusters):
        ClusterNode.objects.update_or_create(cluster=cluster, name=hostname, defaults=values)
        known.add(cluster.name)
        if values["state"] == NodeState.IDLE:  # a free slot: the manager picks its chunk
            dispatch_for_idle_node(cluster.pk)
    _note_unassigned(hostname, set(clusters) - known, values)
    return len(known)


def local_facts() -> dict[str, Any]:
    return {
        "cpu_percent": psutil.cpu_percent(interval=None),
        "memory_percent": psutil.virtual_memory().percent,
        "cpu_count": os.cpu_count(),
        "concurrency": concurrency(),
        "render_threads": settings.RENDER_THREADS,
        "ip_address": _ip_address(),
        "compiled_python": bytecode.describe(settings.RENDER_BYTECODE_DIR),
    }


def _note_unassigned(hostname: str, missing: set[str], values: dict[str, Any]) -> None:
    """A queue with no cluster of its name is remembered, for System status to offer the
    cluster; it is forgotten once the cluster exists or the worker stops."""
    from clusters.models import UnassignedWorker

    mine = UnassignedWorker.objects.filter(hostname=hostname)
    if values["state"] == NodeState.OFFLINE:
        mine.delete()
        return
    mine.exclude(cluster_name__in=missing).delete()
    for name in sorted(missing):
        UnassignedWorker.objects.update_or_create(
            cluster_name=name,
            hostname=hostname,
            defaults={
                key: values[key] for key in ("cpu_count", "concurrency", "ip_address", "last_seen")
            },
        )


def _ip_address() -> str | None:
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return None


def _loop(hostname: str, clusters: list[str], stop: threading.Event) -> None:
    try:
        while not stop.is_set():
            try:
                with FORK_GUARD.round():  # the pool never forks in the middle of one
                    report(hostname, clusters)
                    close_old_connections()
            except Exception:  # the heartbeat must outlive a database blip
                log.exception("node heartbeat failed")
            stop.wait(settings.NODE_HEARTBEAT_SECONDS)
    finally:
        connection.close()  # this thread's own connection


@worker_init.connect
def _start(sender: Any = None, **kwargs: Any) -> None:
    # worker_init comes before the pool forks: the thread lives in the main process only,
    # and its rounds and the pool's forks wait for each other (renderhub.node.fork_guard).
    _state["concurrency"] = getattr(sender, "concurrency", None) or 1
    _state["hostname"] = sender.hostname
    _state["stop"].set()  # a previous worker in this process (tests) stops reporting
    clusters = cluster_names(list(sender.app.amqp.queues.consume_from or {}))
    _state["clusters"] = clusters
    if not clusters:
        return
    # What a round imports, imported here in the main thread rather than by the thread.
    from .backends import celery as _celery_backend  # noqa: F401
    from .dispatch import dispatch_for_idle_node  # noqa: F401

    _state["stop"] = stop_event = threading.Event()
    _state["thread"] = thread = threading.Thread(
        target=_loop, args=(sender.hostname, clusters, stop_event), daemon=True
    )
    thread.start()
    log.info("render worker %s serving clusters %s", sender.hostname, ", ".join(clusters))


def stop(hostname: str | None = None, state: str = NodeState.OFFLINE) -> None:
    """Stop this process's heartbeat thread and mark its nodes offline."""
    _state["stop"].set()
    if thread := _state.pop("thread", None):
        thread.join(timeout=30)
    if (clusters := _state.get("clusters")) and hostname:
        try:
            report(hostname, clusters, state)
        except Exception:
            log.exception("could not mark the node offline")


@worker_shutdown.connect
def _stop(sender: Any = None, **kwargs: Any) -> None:
    stop(sender.hostname)
