"""Render job operations. Admin actions, pages, CLI, API and beat all call these.

State lives in the database: a job's Tasks (chunks) and Frames are created in one
transaction, and workers claim tasks with conditional UPDATEs, so a duplicate
delivery, a cancel racing a start, or a reaped worker never double-counts a frame.
"""

from __future__ import annotations

import functools
import logging
import posixpath
import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from clusters.choices import Backend, ClusterState, NodeState
from clusters.models import Cluster, ClusterNode
from images import parameters as software_parameters
from images.models import Software
from projects.models import Project
from renderhub import storage
from renderhub.compute import ComputeError
from renderhub.outcome import Outcome

from .backends import get_backend
from .choices import ACTIVE_JOB_STATES, OPEN_TASK_STATES, FrameState, JobState, TaskState
from .framespec import FrameSpecError, parse_frame_spec, split_by_size, split_even
from .models import Frame, NodeBlock, RenderJob, Task
from .signals import frame_failed, job_state_changed

if TYPE_CHECKING:
    from django.contrib.auth.models import User

log = logging.getLogger(__name__)


class SubmissionError(ValidationError):
    """Invalid submission; ``message_dict`` maps field names to messages."""


@dataclass
class RenderRequest:
    project: Project
    software: Software
    cluster: Cluster
    scenes: list[str]
    frames: str
    nodes: int | None = None
    chunk_size: int | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    priority: int = 0
    test_frame_first: bool = False
    name: str = ""


def _check(errors: dict[str, list[str]], key: str, message: str) -> None:
    errors.setdefault(key, []).append(message)


def validate_render(request: RenderRequest, user: User | None) -> tuple[list[int], dict[str, Any]]:
    """Everything that can be wrong with a submission, all at once, before anything is queued."""
    errors: dict[str, list[str]] = {}
    project, software, cluster = request.project, request.software, request.cluster
    if user is not None and not Project.objects.visible_to(user).filter(pk=project.pk).exists():
        raise SubmissionError({"project": ["You are not a member of this project."]})
    if software.image_id != project.image_id:
        _check(errors, "software", f"{software} is not on this project's image ({project.image}).")
    if cluster.image_id != project.image_id:
        _check(errors, "cluster", f"Cluster {cluster} runs another image than this project's.")
    if cluster.state != ClusterState.ACTIVE:
        _check(errors, "cluster", f"Cluster {cluster} is {cluster.get_state_display().lower()}.")

    if not request.scenes:
        _check(errors, "scenes", "Choose at least one scene file.")
    if len(set(request.scenes)) != len(request.scenes):
        _check(errors, "scenes", "The same scene is listed twice.")
    mappings = list(project.mappings.all())
    for url in request.scenes:
        try:
            backend, key = storage.resolve(url)
        except storage.StorageError as exc:
            _check(errors, "scenes", f"{url}: {exc}")
            continue
        if not software.accepts_scene(key):
            _check(
                errors,
                "scenes",
                f"{posixpath.basename(key)} is not a {software.name} scene "
                f"(expected {', '.join(software.suffixes)}).",
            )
            continue
        if not any(storage.is_prefix_of(m.source, url) for m in mappings):
            _check(errors, "scenes", f"{url} is outside this project's storage mappings.")
            continue
        try:
            backend.stat(key)
        except storage.NotFound:
            _check(errors, "scenes", f"{url} does not exist.")
        except storage.StorageError as exc:
            _check(errors, "scenes", f"{url} could not be checked: {exc}")

    frames: list[int] = []
    try:
        frames = parse_frame_spec(request.frames, max_frames=settings.RENDER_MAX_FRAMES_PER_JOB)
    except FrameSpecError as exc:
        _check(errors, "frames", str(exc))

    max_nodes = min(cluster.max_nodes, settings.RENDER_MAX_NODES_PER_JOB)
    if request.nodes is not None and not 1 <= request.nodes <= max_nodes:
        _check(
            errors,
            "nodes",
            f"Nodes must be between 1 and {max_nodes} "
            f"(cluster {cluster} allows {cluster.max_nodes}, "
            f"RENDER_MAX_NODES_PER_JOB is {settings.RENDER_MAX_NODES_PER_JOB}).",
        )
    if request.chunk_size is not None and request.chunk_size < 1:
        _check(errors, "chunk_size", "Chunk size must be at least 1 frame.")
    if request.nodes is not None and request.chunk_size is not None:
        _check(errors, "chunk_size", "Give nodes or a chunk size, not both.")
    if not -100 <= request.priority <= 100:
        _check(errors, "priority", "Priority must be between -100 and 100.")
    if len(request.name) > 150:
        _check(errors, "name", "The name must be at most 150 characters.")

    values: dict[str, Any] = {}
    try:
        values = software_parameters.coerce_values(software.parameters, request.parameters)
    except ValidationError as exc:
        errors.setdefault("parameters", []).extend(exc.messages)
    if errors:
        raise SubmissionError(errors)
    return frames, values


def _chunks(request: RenderRequest, frames: list[int]) -> list[list[int]]:
    if request.chunk_size:
        return split_by_size(frames, request.chunk_size)
    return split_even(frames, request.nodes or request.cluster.desired_nodes or 1)


def submit_render(request: RenderRequest, user: User | None = None) -> list[RenderJob]:
    """Validate, then create a RenderJob per scene with its Tasks and Frames; dispatch on commit."""
    frames, values = validate_render(request, user)
    jobs: list[RenderJob] = []
    with transaction.atomic():
        first = None
        for scene in request.scenes:
            stem = posixpath.splitext(posixpath.basename(scene))[0]
            job = RenderJob.objects.create(
                project=request.project,
                software=request.software,
                cluster=request.cluster,
                submitted_by=user,
                name=(request.name or stem)[:200],
                scene_url=scene,
                frame_spec=request.frames,
                frame_count=len(frames),
                node_count=request.nodes or request.cluster.desired_nodes or 1,
                chunk_size=request.chunk_size,
                parameters=values,
                priority=request.priority,
                test_frame_first=request.test_frame_first and len(frames) > 1,
                output_url="",
                **({"submission": first.submission} if first else {}),
            )
            first = first or job
            slug = re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-")[:60] or "job"
            job.output_url = storage.join(request.project.output_prefix, f"{job.pk}-{slug}/")
            job.save(update_fields=["output_url"])
            _create_tasks(job, request, frames)
            jobs.append(job)
            transaction.on_commit(functools.partial(_enqueue_dispatch, job.pk))
    log.info("submitted jobs %s (%d frames each)", [j.pk for j in jobs], len(frames))
    return jobs


def _create_tasks(job: RenderJob, request: RenderRequest, frames: list[int]) -> None:
    chunks: list[tuple[list[int], bool]] = []
    if job.test_frame_first:
        chunks.append(([frames[0]], True))
        chunks += [(c, False) for c in _chunks(request, frames[1:])]
    else:
        chunks = [(c, False) for c in _chunks(request, frames)]
    held = job.test_frame_first
    tasks = Task.objects.bulk_create(
        Task(
            job=job,
            index=i,
            frames=chunk,
            is_test=is_test,
            state=TaskState.HELD if held and not is_test else TaskState.QUEUED,
            max_attempts=settings.RENDER_TASK_MAX_ATTEMPTS,
        )
        for i, (chunk, is_test) in enumerate(chunks)
    )
    if not all(t.pk for t in tasks):  # SQLite before 3.35 cannot return ids from bulk inserts
        tasks = list(job.tasks.order_by("index"))
    Frame.objects.bulk_create(
        (Frame(job=job, task=task, number=n) for task in tasks for n in task.frames),
        batch_size=2000,
    )


def _enqueue_dispatch(job_id: int) -> None:
    """Send the job's new chunks right after commit; if that fails, dispatch_pending retries."""
    try:
        dispatch(job_id)
    except Exception:  # broker down or slow: the rows stay undispatched, never lost
        log.exception("could not dispatch job %s now; the next dispatch_pending will", job_id)


def dispatch(job_id: int) -> int:
    """Hand the job's queued, not yet dispatched tasks to its cluster's backend."""
    job = RenderJob.objects.select_related("cluster", "project").get(pk=job_id)
    if not job.is_active:
        return 0
    tasks = list(job.tasks.filter(state=TaskState.QUEUED, queued_at__isnull=True))
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
        job__cluster__backend=Backend.CELERY,
        job__cluster__in=idle.values("cluster"),
    ).update(queued_at=None)
    job_ids = set(
        Task.objects.filter(
            state=TaskState.QUEUED, queued_at__isnull=True, job__state__in=ACTIVE_JOB_STATES
        ).values_list("job_id", flat=True)
    )
    return sum(dispatch(job_id) for job_id in sorted(job_ids))


def _announce(job_id: int, old_state: str, new_state: str) -> None:
    """Tell subscribers (webhooks, e-mail) once the change is committed."""
    if old_state != new_state:
        transaction.on_commit(
            lambda: job_state_changed.send(
                sender=RenderJob, job_id=job_id, old_state=old_state, new_state=new_state
            )
        )


# --- Operations users ask for ---------------------------------------------------------


def cancel_job(job: RenderJob) -> Outcome:
    """Cancel every open task and frame; running renderers are killed by their workers.

    The rows are committed before the backend is told to stop: a backend that cannot stop
    its work now (a BatchCompute call failed) leaves the job cancelled, with a warning that
    says so, and its poller keeps stopping it.
    """
    with transaction.atomic():
        locked = RenderJob.objects.select_for_update().get(pk=job.pk)
        if not locked.is_active:
            return Outcome(False, f"Job #{job.pk} is already {locked.state}; nothing to cancel.")
        open_tasks = list(locked.tasks.filter(state__in=OPEN_TASK_STATES))
        Task.objects.filter(pk__in=[t.pk for t in open_tasks]).update(
            state=TaskState.CANCELLED, finished_at=timezone.now()
        )
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
    """Run the failed and cancelled chunks of an ended job again (only their unfinished frames).

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
            frames_failed=F("frames_failed") - failed_count,
        )
        _announce(job.pk, locked.state, new_state)
        transaction.on_commit(lambda: _enqueue_dispatch(job.pk))
    return len(retry)


def requeue_task(task: Task, reason: str = "requeued by a user") -> bool:
    """Put a queued or running chunk back in the queue (e.g. its node is stuck)."""
    with transaction.atomic():
        updated = Task.objects.filter(
            pk=task.pk, state__in=(TaskState.QUEUED, TaskState.RUNNING)
        ).update(state=TaskState.QUEUED, queued_at=None, node="", pid=None, heartbeat_at=None)
        if updated:
            task.frame_set.filter(state=FrameState.RUNNING).update(state=FrameState.QUEUED)
            log.info("requeued %s: %s", task, reason)
            transaction.on_commit(lambda: _enqueue_dispatch(task.job_id))
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


def task_started(task: Task) -> None:
    now = timezone.now()
    if RenderJob.objects.filter(pk=task.job_id, state=JobState.QUEUED).update(
        state=JobState.RUNNING, started_at=now
    ):
        _announce(task.job_id, JobState.QUEUED, JobState.RUNNING)


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
        if not ok and current.node:
            _count_node_failure(current.job_id, current.node, reason)
        if new_state == TaskState.QUEUED:
            current.frame_set.filter(state=FrameState.RUNNING).update(state=FrameState.QUEUED)
            transaction.on_commit(lambda: _enqueue_dispatch(task.job_id))
        elif new_state == TaskState.FAILED:
            _fail_open_frames(current, reason)
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
                transaction.on_commit(lambda: _enqueue_dispatch(job_id))
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
