"""Render job operations. Admin actions, pages, CLI, API and beat all call these.

Submitting lives in ``submission.py`` and sending chunks in ``dispatch.py``; their entry
points are re-exported here, so every caller keeps one place to call.

State lives in the database: a job's Tasks (chunks) and Frames are created in one
transaction, and workers claim tasks with conditional UPDATEs, so a duplicate
delivery, a cancel racing a start, or a reaped worker never double-counts a frame.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from renderhub.compute import ComputeError
from renderhub.outcome import Outcome

from . import machine_share
from .backends import get_backend
from .choices import OPEN_TASK_STATES, FrameState, JobState, TaskState
from .dispatch import dispatch as dispatch
from .dispatch import dispatch_pending as dispatch_pending
from .dispatch import enqueue_dispatch
from .models import AttemptState, Frame, NodeBlock, RenderJob, Task, TaskAttempt
from .scheduling import dependents_of
from .scheduling import pause_job as pause_job
from .scheduling import resume_job as resume_job
from .scheduling import set_priority as set_priority
from .signals import frame_failed, job_state_changed
from .submission import RenderRequest as RenderRequest
from .submission import SubmissionError as SubmissionError
from .submission import submit_render as submit_render
from .submission import validate_render as validate_render

log = logging.getLogger(__name__)


def _announce(job_id: int, old_state: str, new_state: str) -> None:
    """Tell subscribers (webhooks, e-mail) once the change is committed."""
    if old_state != new_state:
        transaction.on_commit(
            lambda: job_state_changed.send(
                sender=RenderJob, job_id=job_id, old_state=old_state, new_state=new_state
            )
        )


# --- Operations users ask for ---------------------------------------------------------


def cancel_job(job: RenderJob, *, cascade: bool = False) -> Outcome:
    """Cancel every open task and frame; running renderers are killed by their workers.
    With ``cascade``, the jobs waiting for it (directly or not) are cancelled too; without,
    they stay held, saying why.

    The rows are committed before the backend is told to stop: a backend that cannot stop
    its work now (a BatchCompute call failed) leaves the job cancelled, with a warning that
    says so, and its poller keeps stopping it.
    """
    outcome = _cancel_one(job)
    if not cascade:
        return outcome
    downstream = [(j, _cancel_one(j)) for j in dependents_of(job)]
    cancelled = [j for j, o in downstream if o.ok]
    if not cancelled:
        return outcome
    ids = ", ".join(f"#{j.pk}" for j in cancelled)
    return Outcome(
        True,
        f"{outcome.message} Also cancelled the jobs waiting for it: {ids}.",
        outcome.count + sum(o.count for _, o in downstream),
        outcome.warnings + tuple(w for _, o in downstream for w in o.warnings),
    )


def _cancel_one(job: RenderJob) -> Outcome:
    with transaction.atomic():
        locked = RenderJob.objects.select_for_update().get(pk=job.pk)
        if not locked.is_active:
            return Outcome(False, f"Job #{job.pk} is already {locked.state}; nothing to cancel.")
        open_tasks = list(locked.tasks.filter(state__in=OPEN_TASK_STATES))
        Task.objects.filter(pk__in=[t.pk for t in open_tasks]).update(
            state=TaskState.CANCELLED, finished_at=timezone.now()
        )
        _close_attempts([t.pk for t in open_tasks], AttemptState.CANCELLED, "cancelled")
        locked.frame_set.filter(state__in=(FrameState.QUEUED, FrameState.RUNNING)).update(
            state=FrameState.CANCELLED
        )
        RenderJob.objects.filter(pk=job.pk).update(
            state=JobState.CANCELLED, finished_at=timezone.now()
        )
        _announce(job.pk, locked.state, JobState.CANCELLED)
    count = len(open_tasks)
    warnings: tuple[str, ...] = ()
    try:
        get_backend(job.cluster.backend).cancel(job, open_tasks)
    except ComputeError as exc:
        log.warning("job %s is cancelled, but its backend could not stop it: %s", job.pk, exc)
        warnings = (
            f"Job #{job.pk} is cancelled in RenderHub, but its work on "
            f"{job.cluster.get_backend_display()} could not be stopped yet: {exc}",
        )
    log.info("cancelled job %s (%d open tasks)", job.pk, count)
    chunks = f"{count} chunk{'' if count == 1 else 's'}"
    return Outcome(True, f"Cancelled job #{job.pk} ({chunks} stopped).", count, warnings)


def retry_job(job: RenderJob) -> int:
    """Run the failed and cancelled chunks of an ended job again (only their unfinished frames),
    with the job's node blocks cleared.

    A job that had a test frame which never passed gets its test frame first again.
    """
    with transaction.atomic():
        locked = RenderJob.objects.select_for_update().get(pk=job.pk)
        if locked.is_active:
            return 0
        retry = list(locked.tasks.exclude(state=TaskState.DONE))
        if not retry:
            return 0
        test_pending = any(t.is_test for t in retry)
        # The user asks for another try: nodes the job had blocked get one too.
        locked.node_blocks.all().delete()
        Task.objects.filter(pk__in=[t.pk for t in retry]).update(
            state=TaskState.QUEUED,
            attempts=0,
            queued_at=None,
            failure_reason="",
            exit_code=None,
            finished_at=None,
        )
        if test_pending:
            locked.tasks.filter(pk__in=[t.pk for t in retry], is_test=False).update(
                state=TaskState.HELD
            )
        reopened = locked.frame_set.filter(
            task__in=retry, state__in=(FrameState.FAILED, FrameState.CANCELLED)
        )
        failed_count = reopened.filter(state=FrameState.FAILED).count()
        reopened.update(state=FrameState.QUEUED, failure_reason="")
        new_state = JobState.QUEUED if locked.frames_done == 0 else JobState.RUNNING
        RenderJob.objects.filter(pk=job.pk).update(
            state=new_state,
            failure_reason="",
            finished_at=None,
            paused_at=None,  # a job paused when it ended runs when retried
            frames_failed=F("frames_failed") - failed_count,
        )
        _announce(job.pk, locked.state, new_state)
        transaction.on_commit(lambda: enqueue_dispatch(job.pk))
    return len(retry)


def requeue_task(task: Task, reason: str = "requeued by a user") -> bool:
    """Put a queued or running chunk back in the queue (e.g. its node is stuck)."""
    with transaction.atomic():
        updated = Task.objects.filter(
            pk=task.pk, state__in=(TaskState.QUEUED, TaskState.RUNNING)
        ).update(state=TaskState.QUEUED, queued_at=None, node="", pid=None, heartbeat_at=None)
        if updated:
            _close_attempts([task.pk], AttemptState.REQUEUED, reason)
            task.frame_set.filter(state=FrameState.RUNNING).update(state=FrameState.QUEUED)
            log.info("requeued %s: %s", task, reason)
            transaction.on_commit(lambda: enqueue_dispatch(task.job_id))
    return bool(updated)


def requeue_job(job: RenderJob) -> int:
    """Requeue every queued or running chunk of an active job."""
    return sum(
        requeue_task(t) for t in job.tasks.filter(state__in=(TaskState.QUEUED, TaskState.RUNNING))
    )


# --- Progress reported by workers -----------------------------------------------------


def frame_started(task: Task, number: int) -> None:
    now = timezone.now()
    Frame.objects.filter(task=task, number=number, state=FrameState.QUEUED).update(
        state=FrameState.RUNNING, started_at=now
    )
    Task.objects.filter(pk=task.pk).update(current_frame=number)


def frame_done(
    task: Task, number: int, *, seconds: float, output_url: str, thumbnail_url: str
) -> bool:
    """Mark a frame done exactly once; returns False if it already was."""
    began = Frame.objects.filter(task=task, number=number).values_list("started_at", flat=True)
    frame = (task.pk, number)
    cost = machine_share.full_node_costs([(*frame, seconds)], {frame: began.first()})[frame]
    with transaction.atomic():
        updated = (
            # The chunk's own frames only: a node reports for the chunk it was given.
            Frame.objects.filter(task=task, number=number)
            # A frame already failed or cancelled keeps that state: a late report from a
            # stale attempt must not make the counters disagree (retry re-renders it).
            .exclude(state__in=(FrameState.DONE, FrameState.FAILED, FrameState.CANCELLED))
            .update(
                state=FrameState.DONE,
                finished_at=timezone.now(),
                seconds=seconds,
                cost_seconds=cost,
                output_url=output_url,
                thumbnail_url=thumbnail_url,
                failure_reason="",
            )
        )
        if updated:
            RenderJob.objects.filter(pk=task.job_id).update(
                frames_done=F("frames_done") + 1, render_seconds=F("render_seconds") + seconds
            )
    return bool(updated)


def task_started(task: Task) -> TaskAttempt:
    """A chunk's attempt began (the task row is already RUNNING on its node): start the job
    if it was queued, and record the attempt."""
    now = timezone.now()
    if RenderJob.objects.filter(pk=task.job_id, state=JobState.QUEUED).update(
        state=JobState.RUNNING, started_at=now
    ):
        _announce(task.job_id, JobState.QUEUED, JobState.RUNNING)
    return start_attempt(task.pk)


def start_attempt(task_id: int) -> TaskAttempt:
    """A new attempt row from the task row as claimed (node, start, cloud instance).

    An attempt still open here was never closed (its worker vanished without a reaper
    seeing it): it ends as requeued, so one chunk never shows two running attempts.
    """
    with transaction.atomic():
        row = Task.objects.select_for_update().get(pk=task_id)
        _close_attempts([task_id], AttemptState.REQUEUED, "superseded by a new attempt")
        last = row.history.order_by("-number").values_list("number", flat=True).first()
        return TaskAttempt.objects.create(
            task=row,
            job_id=row.job_id,
            number=(last or 0) + 1,
            node=row.node,
            started_at=row.started_at or timezone.now(),
            cloud_job_id=row.cloud_job_id,
            cloud_instance=row.cloud_instance,
        )


def _close_attempts(task_ids: list[int], state: str, reason: str) -> None:
    TaskAttempt.objects.filter(task_id__in=task_ids, state=AttemptState.RUNNING).update(
        state=state, finished_at=timezone.now(), failure_reason=reason[:2000]
    )


def _end_attempt(task: Task, *, ok: bool, reason: str, exit_code: int | None) -> None:
    """Close the task's open attempt with what the task row holds now: the logs' folder and
    tails the worker or poller wrote just before, the node, the outcome."""
    now = timezone.now()
    values = {
        "state": AttemptState.DONE if ok else AttemptState.FAILED,
        "finished_at": now,
        "exit_code": exit_code,
        "failure_reason": reason,
        "node": task.node,
        "log_url": task.log_url,
        "agent_log_tail": task.agent_log_tail,
        "stdout_tail": task.stdout_tail,
        "stderr_tail": task.stderr_tail,
        "cloud_job_id": task.cloud_job_id,
        "cloud_instance": task.cloud_instance,
    }
    open_attempt = task.history.filter(state=AttemptState.RUNNING).order_by("-number").first()
    if open_attempt is not None:
        TaskAttempt.objects.filter(pk=open_attempt.pk).update(**values)
        return
    # Started before attempts were recorded, or retried by BatchCompute itself.
    last = task.history.order_by("-number").values_list("number", flat=True).first()
    TaskAttempt.objects.create(
        task=task,
        job_id=task.job_id,
        number=(last or 0) + 1,
        started_at=task.started_at,
        **values,
    )


def task_finished(
    task: Task, *, ok: bool, reason: str, exit_code: int | None, retryable: bool
) -> str:
    """Record the end of one attempt; retry, fail or finish. Returns the task's new state."""
    with transaction.atomic():
        current = Task.objects.select_for_update().get(pk=task.pk)
        if current.state != TaskState.RUNNING or current.attempts != task.attempts:
            return current.state  # cancelled, or reaped and owned by another attempt now
        now = timezone.now()
        if ok:
            new_state = TaskState.DONE
        elif retryable and current.attempts < current.max_attempts:
            new_state = TaskState.QUEUED
        else:
            new_state = TaskState.FAILED
        Task.objects.filter(pk=task.pk).update(
            state=new_state,
            exit_code=exit_code,
            failure_reason=reason,
            finished_at=now if new_state != TaskState.QUEUED else None,
            queued_at=None,
            current_frame=None,
            pid=None,
        )
        _end_attempt(current, ok=ok, reason=reason, exit_code=exit_code)
        if not ok and current.node:
            _count_node_failure(current.job_id, current.node, reason)
        if new_state == TaskState.QUEUED:
            current.frame_set.filter(state=FrameState.RUNNING).update(state=FrameState.QUEUED)
        elif new_state == TaskState.FAILED:
            _fail_open_frames(current, reason)
        # The chunk's slot is free (or the chunk is queued again): the cluster's next chunk
        # is chosen now, whichever job it belongs to (jobs.dispatch).
        transaction.on_commit(lambda: enqueue_dispatch(task.job_id))
        update_job_state(current.job_id)
    return new_state


def _fail_open_frames(task: Task, reason: str) -> None:
    """Fail the chunk's unfinished frames, count them, and announce each after commit."""
    open_frames = task.frame_set.filter(state__in=(FrameState.QUEUED, FrameState.RUNNING))
    numbers = list(open_frames.values_list("number", flat=True))
    open_frames.update(state=FrameState.FAILED, failure_reason=reason[:2000])
    RenderJob.objects.filter(pk=task.job_id).update(frames_failed=F("frames_failed") + len(numbers))
    transaction.on_commit(
        lambda: [
            frame_failed.send(sender=Frame, job_id=task.job_id, frame_number=n, reason=reason)
            for n in numbers
        ]
    )


def _count_node_failure(job_id: int, node: str, reason: str) -> None:
    block, _ = NodeBlock.objects.get_or_create(job_id=job_id, node=node)
    NodeBlock.objects.filter(pk=block.pk).update(
        failures=F("failures") + 1, last_reason=reason[:2000]
    )


def is_blocked(job_id: int, node: str) -> bool:
    """Whether ``node`` failed this job's chunks often enough to be kept off it."""
    limit = settings.RENDER_BLOCKLIST_AFTER
    return (
        bool(limit)
        and NodeBlock.objects.filter(job_id=job_id, node=node, failures__gte=limit).exists()
    )


def nodes_left(task: Task) -> set[str]:
    """Online nodes of the task's cluster that are not blocklisted for its job."""
    limit = settings.RENDER_BLOCKLIST_AFTER
    online = set(task.job.cluster.online_nodes().values_list("name", flat=True))
    blocked = set(
        NodeBlock.objects.filter(job_id=task.job_id, failures__gte=limit).values_list(
            "node", flat=True
        )
    )
    return online - blocked if limit else online


def fail_unclaimed(task: Task, reason: str) -> bool:
    """Fail a queued chunk that no node may take; returns False if it was not queued."""
    with transaction.atomic():
        if not Task.objects.filter(pk=task.pk, state=TaskState.QUEUED).update(
            state=TaskState.FAILED, failure_reason=reason, finished_at=timezone.now()
        ):
            return False
        _fail_open_frames(task, reason)
        update_job_state(task.job_id)
    return True


def update_job_state(job_id: int) -> str:
    """Derive the job's state from its tasks; release held tasks after a good test frame."""
    with transaction.atomic():
        job = RenderJob.objects.select_for_update().get(pk=job_id)
        if not job.is_active:
            return job.state
        tasks = list(job.tasks.values("is_test", "state", "failure_reason", "index"))
        test = next((t for t in tasks if t["is_test"]), None)
        held = [t for t in tasks if t["state"] == TaskState.HELD]
        if test and held:
            if test["state"] == TaskState.DONE:
                job.tasks.filter(state=TaskState.HELD).update(state=TaskState.QUEUED)
                transaction.on_commit(lambda: enqueue_dispatch(job_id))
                return job.state
            if test["state"] == TaskState.FAILED:
                job.tasks.filter(state=TaskState.HELD).update(state=TaskState.CANCELLED)
                job.frame_set.filter(state=FrameState.QUEUED).update(state=FrameState.CANCELLED)
                return _end_job(
                    job, JobState.FAILED, f"The test frame failed: {test['failure_reason']}"
                )
        if any(t["state"] in OPEN_TASK_STATES for t in tasks):
            return job.state
        failed = [t for t in tasks if t["state"] == TaskState.FAILED]
        if failed:
            first = min(failed, key=lambda t: t["index"])
            reason = (
                f"{len(failed)} of {len(tasks)} chunks failed; first: {first['failure_reason']}"
            )
            return _end_job(job, JobState.FAILED, reason)
        if all(t["state"] == TaskState.DONE for t in tasks):
            return _end_job(job, JobState.FINISHED, "")
        return _end_job(job, JobState.CANCELLED, "")


def _end_job(job: RenderJob, state: str, reason: str) -> str:
    RenderJob.objects.filter(pk=job.pk).update(
        state=state, failure_reason=reason[:5000], finished_at=timezone.now()
    )
    _announce(job.pk, job.state, state)
    log.info("job %s %s%s", job.pk, state, f": {reason}" if reason else "")
    if state == JobState.FINISHED and job.project.auto_download and settings.AUTO_DOWNLOAD:
        from .tasks import download_outputs

        transaction.on_commit(lambda: download_outputs.delay(job.pk))
    return state


# --- Automation -----------------------------------------------------------------------


def reap_stale_tasks() -> int:
    """Requeue running chunks whose worker stopped heart-beating (killed, powered off, lost)."""
    cutoff = timezone.now() - timedelta(seconds=settings.RENDER_STALE_AFTER)
    # Cloud chunks are watched by the BatchCompute poller, never reaped: a requeue there
    # would start a second paid cloud job while the first still runs.
    stale = Task.objects.filter(state=TaskState.RUNNING, cloud_job__isnull=True).filter(
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff)
    )
    count = 0
    for task in stale:
        node = task.node or "unknown node"
        state = task_finished(
            task,
            ok=False,
            reason=f"Lost contact with {node} (no heartbeat for {settings.RENDER_STALE_AFTER} s).",
            exit_code=None,
            retryable=True,
        )
        log.warning("reaped %s from %s: now %s", task, node, state)
        count += 1
    return count
