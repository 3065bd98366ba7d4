"""Pausing and resuming jobs, and what a cluster's resume means for its chunks.

A paused job keeps its state (queued or running: it has not ended) and gets ``paused_at``;
the rule is kept where chunks are taken: ``runner.claim`` takes no chunk of a paused job or
of a suspended cluster, and ``dispatch`` sends none. A message already in the broker finds
the job paused and is skipped; resuming sends the job's queued chunks again.

Pausing lets running chunks finish. Pausing *now* also stops them: each running chunk goes
back to the queue (its node sees that at its next heartbeat and kills the renderer), its
finished frames stay done, and its attempt is not counted against it.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from clusters.choices import Backend
from renderhub.outcome import Outcome

from .choices import ACTIVE_JOB_STATES, FrameState, TaskState
from .dispatch import enqueue_dispatch
from .models import AttemptState, RenderJob, Task, TaskAttempt

log = logging.getLogger(__name__)


def pause_job(job: RenderJob, *, now: bool = False) -> Outcome:
    """Start no new chunk of the job; with ``now``, also put its running chunks back
    (their finished frames are kept)."""
    with transaction.atomic():
        locked = RenderJob.objects.select_for_update().select_related("cluster").get(pk=job.pk)
        if not locked.is_active:
            return Outcome(False, f"Job #{job.pk} is already {locked.state}; nothing to pause.")
        if now and locked.cluster.backend != Backend.CELERY:
            return Outcome(
                False,
                f"Job #{job.pk} runs on BatchCompute, whose running chunks cannot be put back: "
                "pause it (running chunks finish), or cancel it and retry it later.",
            )
        was_paused = locked.paused_at is not None
        if not was_paused:
            RenderJob.objects.filter(pk=job.pk).update(paused_at=timezone.now())
        stopped = _stop_running(locked) if now else 0
    if was_paused and not stopped:
        return Outcome(False, f"Job #{job.pk} is paused already.")
    log.info("paused job %s (%d running chunks stopped)", job.pk, stopped)
    if now:
        chunks = f"{stopped} running chunk{'' if stopped == 1 else 's'}"
        return Outcome(True, f"Paused job #{job.pk}: {chunks} stopped and queued again.", stopped)
    return Outcome(True, f"Paused job #{job.pk}: no new chunk starts; running chunks finish.")


def _stop_running(job: RenderJob) -> int:
    """Put the job's running chunks back in the queue, undispatched (resume sends them).

    The node's heartbeat finds its chunk no longer running and kills the renderer; a frame
    it reports done before that is still counted. The attempt the pause cut short gives the
    chunk one more attempt, so pausing never makes a chunk fail."""
    running = list(job.tasks.filter(state=TaskState.RUNNING).values_list("pk", flat=True))
    Task.objects.filter(pk__in=running).update(
        state=TaskState.QUEUED,
        queued_at=None,
        node="",
        pid=None,
        heartbeat_at=None,
        current_frame=None,
        max_attempts=F("max_attempts") + 1,
    )
    TaskAttempt.objects.filter(task_id__in=running, state=AttemptState.RUNNING).update(
        state=AttemptState.REQUEUED, finished_at=timezone.now(), failure_reason="paused"
    )
    job.frame_set.filter(task_id__in=running, state=FrameState.RUNNING).update(
        state=FrameState.QUEUED, started_at=None
    )
    return len(running)


def resume_job(job: RenderJob) -> Outcome:
    """Let a paused job's chunks start again; its queued chunks are sent now."""
    with transaction.atomic():
        if not RenderJob.objects.filter(
            pk=job.pk, paused_at__isnull=False, state__in=ACTIVE_JOB_STATES
        ).update(paused_at=None):
            return Outcome(False, f"Job #{job.pk} is not paused.")
        count = _send_again(Task.objects.filter(job_id=job.pk))
        transaction.on_commit(lambda: enqueue_dispatch(job.pk))
    log.info("resumed job %s", job.pk)
    return Outcome(True, f"Resumed job #{job.pk}: its chunks may start again.", count)


def _send_again(tasks: QuerySet[Task]) -> int:
    """Queued chunks whose messages were skipped while they could not start: undispatched,
    so the next dispatch sends them (a message still in the broker is a harmless duplicate)."""
    return tasks.filter(state=TaskState.QUEUED).update(queued_at=None)


def cluster_resumed(cluster_id: int, **kwargs: object) -> None:
    """A resumed cluster's queued chunks are sent again (clusters.suspension's signal)."""
    jobs = list(
        RenderJob.objects.active()
        .filter(cluster_id=cluster_id, paused_at__isnull=True)
        .values_list("pk", flat=True)
    )
    with transaction.atomic():
        _send_again(Task.objects.filter(job_id__in=jobs))
    for pk in jobs:
        enqueue_dispatch(pk)
