"""Real Celery workers for tests, and one way to wait for what they do.

:func:`celery_worker` is the one test worker: a real Celery worker (threads) on the
configured broker, consuming a private default queue (so a demo worker or another test run
on the same broker never steals its tasks) plus any queues given. :func:`render_worker_for`
is that worker on a cluster's render queue; the ``render_worker`` and ``task_worker``
fixtures (tests/conftest.py) start one for a test. :func:`wait_for` waits for a row to
reach a state, or for any check to come true.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from jobs.choices import TERMINAL_JOB_STATES
from workflows.choices import TERMINAL_RUN_STATES

# The states a render job or a workflow run ends in.
ENDED: tuple[str, ...] = (*TERMINAL_JOB_STATES, *TERMINAL_RUN_STATES)


@contextmanager
def celery_worker(
    default_queue: str = "",
    *,
    queues: Iterable[str] = (),
    hostname: str = "",
    concurrency: int = 1,
) -> Iterator[Any]:
    """A real Celery worker consuming ``queues`` and a private default queue (tasks sent
    without a queue go there); a context manager, so a test starts it when it likes."""
    from celery.contrib.testing.worker import start_worker

    from renderhub.celery import app

    default_queue = default_queue or f"renderhub-test-{uuid.uuid4().hex[:8]}"
    saved = app.conf.task_default_queue
    app.conf.task_default_queue = default_queue
    try:
        with start_worker(
            app,
            pool="threads",
            concurrency=concurrency,
            queues=[*queues, default_queue],
            perform_ping_check=False,
            hostname=hostname or f"test-{default_queue}@localhost",
            shutdown_timeout=30,
        ) as worker:
            yield worker
    finally:
        app.conf.task_default_queue = saved


@contextmanager
def render_worker_for(
    cluster: Any, settings: Any, prefix: str = "test", concurrency: int = 2
) -> Iterator[Any]:
    """The test worker (``concurrency`` threads, two by default) on the cluster's render
    queue, named ``<prefix>-<cluster>@localhost``, heart-beating every second."""
    from jobs import heartbeat

    settings.RENDER_HEARTBEAT_SECONDS = 1
    settings.NODE_HEARTBEAT_SECONDS = 1
    try:
        with celery_worker(
            f"renderhub-{cluster.name}",
            queues=[cluster.queue],
            hostname=f"{prefix}-{cluster.name}@localhost",
            concurrency=concurrency,
        ) as worker:
            yield worker
    finally:
        # Celery's test worker never sends worker_shutdown: stop its node heartbeat here,
        # or it would write to the database after the test tore it down.
        heartbeat.stop()


def wait_for(
    subject: Any,
    states: Iterable[str] = ENDED,
    *,
    timeout: float = 120,
    what: str = "",
    every: float = 0.2,
    explain: Callable[[], str] | None = None,
) -> Any:
    """Wait until ``subject`` is done; AssertionError after ``timeout`` seconds.

    ``subject`` is either a row with a ``state`` (a render job, a workflow run), re-read
    until its state is one of ``states`` (default: any end state) and returned, or a check
    (a callable), called until it returns something true, which is returned. On a timeout
    the error carries ``explain()`` (a render job's chunks by default): a run that fails
    once in CI says where it stood.
    """
    if callable(subject):
        check: Callable[[], Any] = subject
        what = what or getattr(subject, "__name__", "the check")
    else:
        row, wanted = subject, set(states)

        def check() -> Any:
            row.refresh_from_db()
            return row if row.state in wanted else None

        what = what or f"{type(row).__name__} {row.pk} to reach {'/'.join(sorted(wanted))}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(every)
    detail = "" if callable(subject) else f" (still {subject.state})"
    if explain is None and type(subject).__name__ == "RenderJob":
        explain = functools.partial(job_story, subject)
    story = f"\n{explain()}" if explain else ""
    raise AssertionError(f"not within {timeout:g} s: {what}{detail}{story}")


def job_story(job: Any) -> str:
    """A render job's chunks as they stand, and its cluster's nodes, for a failure message."""
    from django.utils import timezone

    from clusters.models import ClusterNode

    now = timezone.now()

    def ago(when: Any) -> str:
        return "-" if when is None else f"{(now - when).total_seconds():.1f}s ago"

    lines = [f"job {job.pk}: {job.state}"]
    for t in job.tasks.order_by("index"):
        lines.append(
            f"  chunk {t.index} {t.state} frames={t.frames} attempts={t.attempts} "
            f"node={t.node or '-'} sent={ago(t.queued_at)} heartbeat={ago(t.heartbeat_at)}"
        )
    for n in ClusterNode.objects.filter(cluster=job.cluster_id).order_by("name"):
        lines.append(f"  node {n.name} {n.state} slots={n.concurrency} seen={ago(n.last_seen)}")
    return "\n".join(lines)


def online_node(cluster: Any, name: str = "node-1", slots: int = 8) -> Any:
    """A node of the cluster that reported itself idle just now, with ``slots`` chunk slots:
    what the dispatcher counts before it sends a chunk (jobs.dispatch)."""
    from django.utils import timezone

    from clusters.choices import NodeState
    from clusters.models import ClusterNode

    node, _ = ClusterNode.objects.update_or_create(
        cluster=cluster,
        name=name,
        defaults={"state": NodeState.IDLE, "concurrency": slots, "last_seen": timezone.now()},
    )
    return node
