"""Pausing and resuming jobs, what a cluster's resume means for its chunks, and jobs that
run after others.

A paused job keeps its state (queued or running: it has not ended) and gets ``paused_at``;
the rule is kept where chunks are taken: ``runner.claim`` takes no chunk of a paused job or
of a suspended cluster, and ``dispatch`` sends none. A message already in the broker finds
the job paused and is skipped; resuming sends the job's queued chunks again.

Pausing lets running chunks finish. Pausing *now* also stops them: each running chunk goes
back to the queue (its node sees that at its next heartbeat and kills the renderer), its
finished frames stay done, and its attempt is not counted against it.

A job submitted to run after others (``after``) is ``waiting`` until they have all
finished; claim and dispatch keep to that as to a pause. When an upstream job fails or is
cancelled, the waiting job is held with a ``hold_reason`` (retrying the upstream job lifts
the hold); cancelling a job can cascade to the jobs waiting for it (``services.cancel_job``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from clusters.choices import Backend
from renderhub.outcome import Outcome

from . import movies
from .choices import ACTIVE_JOB_STATES, FrameState, JobState, TaskState
from .dispatch import enqueue_dispatch
from .models import AttemptState, RenderJob, Task, TaskAttempt
from .signals import job_state_changed

if TYPE_CHECKING:
    from django.contrib.auth.models import User

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
    if (
        locked.cluster.backend != Backend.CELERY
        and locked.tasks.filter(queued_at__isnull=False).exists()
    ):
        return Outcome(
            True,
            f"Paused job #{job.pk}: no chunk of it is sent to BatchCompute any more; the "
            "chunks already sent run on (a cloud job takes them all at once).",
        )
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


# --- Priority: which job a free node slot serves first (jobs.dispatch) --------------------

PRIORITY_RANGE = (-100, 100)


def priority_refusal(priority: int, user: User | None) -> str:
    """Why ``user`` may not give a job ``priority`` ("" if they may). Members may lower
    their jobs' priority, and raise it up to RENDER_MEMBER_MAX_PRIORITY; above that a job
    would jump other projects' jobs on a shared cluster, which is for whoever has the
    change-render-job right (``user`` None: the system, a trusted script)."""
    low, high = PRIORITY_RANGE
    if isinstance(priority, bool) or not isinstance(priority, int) or not low <= priority <= high:
        return f"Priority must be between {low} and {high}."
    ceiling = settings.RENDER_MEMBER_MAX_PRIORITY
    if user is not None and priority > ceiling and not user.has_perm("jobs.change_renderjob"):
        return (
            f"Priorities above {ceiling} make other projects' jobs wait; they need the "
            "change-render-job right (ask a render wrangler)."
        )
    return ""


def set_priority(job: RenderJob, priority: int, user: User | None = None) -> Outcome:
    """Change an active job's priority (as ``user`` may); its chunks not yet sent compete
    with it from now on (a free slot may go to it at once)."""
    if refusal := priority_refusal(priority, user):
        return Outcome(False, refusal)
    with transaction.atomic():
        locked = RenderJob.objects.select_for_update().select_related("cluster").get(pk=job.pk)
        if not locked.is_active:
            return Outcome(False, f"Job #{job.pk} is already {locked.state}; its priority stays.")
        if locked.priority == priority:
            return Outcome(False, f"Job #{job.pk} has priority {priority} already.")
        RenderJob.objects.filter(pk=job.pk).update(priority=priority)
        transaction.on_commit(lambda: enqueue_dispatch(job.pk))
    log.info("job %s: priority %s -> %s", job.pk, locked.priority, priority)
    message = f"Job #{job.pk}: priority {locked.priority} → {priority}."
    if locked.cluster.backend != Backend.CELERY:
        message += " A BatchCompute job already sent keeps the priority it was sent with."
    return Outcome(True, message)


# --- Dependencies: a job that runs after others --------------------------------------------

MAX_AFTER = 50  # upstream jobs one job may wait for


def check_after(ids: list[int], user: User | None, errors: dict[str, list[Any]]) -> list[RenderJob]:
    """The jobs a submission is to run after, as ``user`` may see them; refusals go into
    ``errors["after"]`` (a job unknown or hidden, or ended without finishing)."""
    if not ids:
        return []
    messages = errors.setdefault("after", [])
    if len(ids) > MAX_AFTER:
        messages.append(f"A job may wait for at most {MAX_AFTER} jobs.")
        return []
    jobs = RenderJob.objects.all() if user is None else RenderJob.objects.visible_to(user)
    found = {job.pk: job for job in jobs.filter(pk__in=ids)}
    for pk in sorted(set(ids)):
        job = found.get(pk)
        if job is None:
            messages.append(f"There is no job #{pk}.")
        elif job.state in (JobState.FAILED, JobState.CANCELLED):
            messages.append(
                f"Job #{pk} is {job.state}: a job after it would never start (retry it first)."
            )
    if not messages:
        del errors["after"]
    return list(found.values())


def wait_after(job: RenderJob, upstream: list[RenderJob]) -> None:
    """Make a new job (in submit's transaction) wait for ``upstream`` to finish.

    The upstream rows are locked while their states are read: an upstream finishing now
    either is seen finished here, or commits after this job exists and releases it."""
    if not upstream:
        return
    job.after.set(upstream)
    states = RenderJob.objects.select_for_update().filter(pk__in=[u.pk for u in upstream])
    if any(state != JobState.FINISHED for state in states.values_list("state", flat=True)):
        RenderJob.objects.filter(pk=job.pk).update(waiting=True)
        job.waiting = True


def upstream_changed(job_id: int, **kwargs: object) -> None:
    """A job changed state (``job_state_changed``, after commit): the jobs waiting for it
    start, stay held with a reason, or are released from a hold (it was retried)."""
    try:
        for pk in (
            RenderJob.objects.active()
            .filter(after=job_id, waiting=True)
            .values_list("pk", flat=True)
        ):
            refresh_wait(pk)
    except Exception:  # the dispatch_pending sweep tries again
        log.exception("could not update the jobs waiting for job %s", job_id)


def refresh_waiting() -> int:
    """Release every waiting job whose upstream all finished (beat's safety net, for a
    manager that stopped between a commit and its signal); returns how many started."""
    waiting = RenderJob.objects.active().filter(waiting=True).values_list("pk", flat=True)
    return sum(refresh_wait(pk) for pk in list(waiting))


def refresh_wait(pk: int) -> bool:
    """Start the job if everything it runs after finished; else keep it waiting, held with
    a reason while an upstream job failed or was cancelled. True if it was released."""
    with transaction.atomic():
        job = RenderJob.objects.select_for_update().get(pk=pk)
        if not job.waiting or not job.is_active:
            return False
        upstream = list(job.after.order_by("pk").values_list("pk", "name", "state"))
        if all(state == JobState.FINISHED for _, _, state in upstream):
            if job.movie_of_id and (why := movies.prepare(job)):
                _fail_before_start(job, why)
                return False
            RenderJob.objects.filter(pk=pk).update(waiting=False, hold_reason="")
            transaction.on_commit(lambda: enqueue_dispatch(pk))
            log.info("job %s: every job it runs after finished; it starts", pk)
            return True
        ended = [
            f"job #{up} ({name}) {state}"
            for up, name, state in upstream
            if state in (JobState.FAILED, JobState.CANCELLED)
        ]
        reason = (
            f"Held: {', '.join(ended)}. Retry it to go on, or cancel this job." if ended else ""
        )
        if reason != job.hold_reason:
            RenderJob.objects.filter(pk=pk).update(hold_reason=reason[:5000])
    return False


def _fail_before_start(job: RenderJob, reason: str) -> None:
    """End a job that cannot start (its preview movie has no frames to encode)."""
    now = timezone.now()
    job.tasks.exclude(state=TaskState.DONE).update(
        state=TaskState.FAILED, failure_reason=reason, finished_at=now
    )
    failed = job.frame_set.exclude(state=FrameState.DONE).update(
        state=FrameState.FAILED, failure_reason=reason
    )
    RenderJob.objects.filter(pk=job.pk).update(
        state=JobState.FAILED,
        waiting=False,
        failure_reason=reason,
        finished_at=now,
        frames_failed=F("frames_failed") + failed,
    )
    old = job.state
    transaction.on_commit(
        lambda: job_state_changed.send(
            sender=RenderJob, job_id=job.pk, old_state=old, new_state=JobState.FAILED
        )
    )
    log.warning("job %s failed before starting: %s", job.pk, reason)


def dependents_of(job: RenderJob) -> list[RenderJob]:
    """Every active job waiting for ``job``, directly or through others (for a cascade)."""
    found: dict[int, RenderJob] = {}
    frontier = [job.pk]
    while frontier:
        batch = RenderJob.objects.active().filter(after__in=frontier).exclude(pk__in=found)
        fresh = list(batch.select_related("cluster").distinct())
        found.update((j.pk, j) for j in fresh)
        frontier = [j.pk for j in fresh]
    return sorted(found.values(), key=lambda j: j.pk)
