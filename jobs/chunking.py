"""Adaptive chunks: a job's unstarted frames are a work queue, cut into chunks of about
``chunk_seconds`` of measured render time, and cut again whenever a node takes a chunk
and whenever a chunk ends, so that the last chunks end together.

How big a chunk is (guided self-scheduling): at most ``chunk_seconds`` of work, and at
most an even share of the unstarted frames over the slots that may render the job, so
chunks shrink toward the end and the node taking the last ones ends about when the others
do; at least four start-ups' worth of work (``RENDER_CHUNK_STARTUP_SECONDS``), so the
renderer's start-up never dominates (unless the job's own ``chunk_seconds`` asks for
less, or an even share of the job over the slots is less: idle slots cost more); and frames
left behind a chunk that would take less than a start-up go with it.

Seconds per frame are measured, never guessed: the job's latest finished frames (its test
frame first of all), else earlier jobs of the same scene with the same software in the
project, else that software's earlier jobs in the project (``jobs.timing``). Until there is
a measurement (a project's first job), the frames are shared evenly, one chunk per slot, as
without adaptive chunks: cutting them smaller would make every slot pay the renderer's
start-up again for frames that may take a fraction of a second; a test frame measures the
chunks held behind it.

The work queue is made of the job's queued chunks that never ran (no attempt), are not
its test frame and hold only queued frames. A chunk that ran and went back to the queue
(a lost node, "pause now") keeps its frames and its attempts, as before. Frames move only
under the job's row lock, in one transaction, between chunks no node holds: none is lost,
none rendered twice, and a cancelled, paused or waiting job is left as it is.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, Max, OuterRef

from clusters.choices import Backend

from . import timing
from .choices import FrameState, TaskState
from .dispatch import enqueue_dispatch
from .models import Frame, RenderJob, Task

log = logging.getLogger(__name__)

STARTUP_SHARE = 4  # a chunk holds at least this many start-ups' worth of render time
CHUNKS_PER_SLOT_UNMEASURED = 1
HEAD_CHUNKS_PER_SLOT = 3  # how far ahead of the nodes the queue is cut again


@dataclass(frozen=True)
class Sizing:
    """What a chunk's size is worked out from."""

    target_seconds: float
    seconds_per_frame: float | None
    slots: int
    startup_seconds: float
    frame_count: int  # the job's frames: an even share of them over the slots caps the least

    @property
    def target_frames(self) -> int | None:
        if not self.seconds_per_frame:
            return None
        return max(1, round(self.target_seconds / self.seconds_per_frame))

    @property
    def least_frames(self) -> int:
        """Enough frames that the renderer's start-up is at most a quarter of the chunk;
        never more than the target, nor than an even share of the job over the slots
        (idle slots cost more than a start-up)."""
        if not self.seconds_per_frame:
            return 1
        least = math.ceil(STARTUP_SHARE * self.startup_seconds / self.seconds_per_frame)
        even = math.ceil(self.frame_count / max(1, self.slots))
        return max(1, min(least, self.target_frames or least, even))


def next_size(pool: int, sizing: Sizing, whole: int | None = None) -> int:
    """Frames in the next chunk taken from ``pool`` unstarted frames (of ``whole`` being
    planned at once)."""
    if pool <= 0:
        return 0
    slots = max(1, sizing.slots)
    target = sizing.target_frames
    if target is None:  # nothing measured yet: an even share per slot
        share = math.ceil((whole or pool) / (CHUNKS_PER_SLOT_UNMEASURED * slots))
        return max(1, min(pool, share))
    least = sizing.least_frames
    size = min(target, max(least, math.ceil(pool / slots)))
    tail = pool - size
    if 0 < tail < least and tail * (sizing.seconds_per_frame or 0) < sizing.startup_seconds:
        size = pool  # what would be left takes less than a start-up: not worth a chunk
    return min(size, pool)


def plan(frames: Sequence[int], sizing: Sizing, later: int = 0) -> list[list[int]]:
    """Cut ``frames`` (ascending) into chunks, each sized by :func:`next_size` from what
    is left after the ones before it, ``later`` more unstarted frames coming after them."""
    chunks: list[list[int]] = []
    start = 0
    while start < len(frames):
        left = len(frames) - start
        size = min(left, next_size(left + later, sizing, len(frames) + later))
        chunks.append(list(frames[start : start + size]))
        start += size
    return chunks


# --- what the sizes are worked out from ----------------------------------------------------


def recent_frames(slots: int) -> int:
    """How many of the job's latest frames its speed is measured on: recent enough to
    follow a scene whose frames get dearer, enough of them to even out noise."""
    return max(4, 2 * slots)


def seconds_per_frame(job: RenderJob, slots: int) -> float | None:
    """The job's latest finished frames' mean, else its history (``jobs.timing``)."""
    recent = list(
        Frame.objects.filter(job=job, state=FrameState.DONE, seconds__gt=0)
        .order_by("-finished_at")
        .values_list("seconds", flat=True)[: recent_frames(slots)]
    )
    if recent:
        return sum(s or 0.0 for s in recent) / len(recent)
    return history_seconds_per_frame(job.project_id, job.software_id, job.scene_url)


def history_seconds_per_frame(project_id: int, software_id: int, scene_url: str) -> float | None:
    """Earlier jobs of the scene with the software in the project, else the software's."""
    key = (project_id, software_id, scene_url)
    speed = timing.scene_speeds([key])[key] or timing.software_speeds([key[:2]])[key[:2]]
    return speed.seconds_per_frame if speed else None


def slots_for(job: RenderJob) -> int:
    """The slots that may render the job: its cluster's online nodes' slots not blocklisted
    for it, at most its ``max_nodes``; the nodes it asked for while none is online."""
    slots = timing.job_slots(job) or job.node_count or 1
    return min(slots, job.max_nodes) if job.max_nodes else slots


def sizing_for(job: RenderJob, *, seconds: float | None = None) -> Sizing:
    slots = slots_for(job)
    return Sizing(
        target_seconds=float(job.chunk_seconds or settings.RENDER_CHUNK_SECONDS or 60),
        seconds_per_frame=seconds if seconds is not None else seconds_per_frame(job, slots),
        slots=slots,
        startup_seconds=settings.RENDER_CHUNK_STARTUP_SECONDS,
        frame_count=job.frame_count,
    )


def default_chunk_seconds(
    cluster_backend: str, nodes: int | None, chunk_size: int | None
) -> int | None:
    """A job given neither nodes nor a chunk size on own machines is a work queue of
    adaptive chunks (``RENDER_CHUNK_SECONDS``; 0 keeps even chunks, one per node)."""
    if nodes is not None or chunk_size is not None or cluster_backend != Backend.CELERY:
        return None
    return settings.RENDER_CHUNK_SECONDS or None


# --- re-cutting the work queue -------------------------------------------------------------


def _pool(job: RenderJob) -> list[Task]:
    """The job's chunks whose frames may move: queued, never tried, not the test frame,
    holding only queued frames (a retried job's chunk keeps its finished frames)."""
    started = Frame.objects.filter(task=OuterRef("pk")).exclude(state=FrameState.QUEUED)
    return list(
        job.tasks.filter(state=TaskState.QUEUED, attempts=0, is_test=False)
        .exclude(Exists(started))
        .select_for_update()
        .order_by("index")
    )


def take(task: Task) -> bool:
    """A node just claimed ``task`` (in the claim's transaction, job row locked): size it
    from the work queue and cut the rest again. Returns True when new chunks were added
    (they need sending)."""
    job = task.job
    if not job.chunk_seconds or task.is_test or task.attempts != 1:
        return False
    pool = _pool(job)
    # The claimed chunk is RUNNING now; its frames are still all queued if it never ran.
    if task.frame_set.exclude(state=FrameState.QUEUED).exists():
        return False
    return _recut(job, [task, *pool], first=task)


def recut(job_id: int) -> bool:
    """Cut the job's work queue again (a chunk ended: the speed is known better now).
    Returns True when new chunks were added."""
    with transaction.atomic():
        job = RenderJob.objects.select_for_update().filter(pk=job_id).first()
        if job is None or not job.chunk_seconds or not job.is_active:
            return False
        return _recut(job, _pool(job))


def _recut(job: RenderJob, rows: list[Task], first: Task | None = None) -> bool:
    """Cut again the frames of ``rows`` (in frame order; ``first``, the chunk just taken,
    gets the first cut). Only the head of the queue is cut, a few chunks per slot: a node
    always takes the front of the queue, so the chunks behind are only a forecast, and a
    job of thousands of chunks costs no more to re-cut than a small one."""
    sizing = sizing_for(job)
    if sizing.seconds_per_frame is None:
        return False  # nothing measured: the chunks keep the frames they were planned with
    limit = HEAD_CHUNKS_PER_SLOT * max(1, sizing.slots) + (1 if first else 0)
    rows, later = rows[:limit], sum(len(t.frames) for t in rows[limit:])
    frames = sorted(
        Frame.objects.filter(task__in=rows, state=FrameState.QUEUED).values_list(
            "number", flat=True
        )
    )
    if not frames:
        return False
    chunks = plan(frames, sizing, later)
    current = [list(t.frames) for t in rows]
    if chunks == current:
        return False
    # Chunks already sent keep their rows (a node may be about to take them); rows beyond
    # the chunks needed go, those not yet sent first.
    others = [t for t in rows if t is not first]
    room = len(chunks) - (1 if first else 0)
    chosen = sorted(others, key=lambda t: (t.queued_at is None, t.index))[:room]
    keep = ([first] if first else []) + sorted(chosen, key=lambda t: t.index)
    drop = [t.pk for t in others if t not in chosen]
    added = len(chunks) - len(keep)
    next_index = (job.tasks.aggregate(m=Max("index"))["m"] or 0) + 1
    new_rows = Task.objects.bulk_create(
        Task(
            job=job,
            index=next_index + i,
            frames=[],
            state=TaskState.QUEUED,
            max_attempts=settings.RENDER_TASK_MAX_ATTEMPTS,
        )
        for i in range(max(0, added))
    )
    if new_rows and not all(t.pk for t in new_rows):  # SQLite before 3.35
        new_rows = list(job.tasks.filter(index__gte=next_index).order_by("index"))
    for row, chunk in zip([*keep, *new_rows], chunks, strict=True):
        if row.frames != chunk:
            Task.objects.filter(pk=row.pk).update(frames=chunk)
            Frame.objects.filter(job=job, number__in=chunk).exclude(task=row).update(task=row)
            row.frames = chunk
    if drop:
        Task.objects.filter(pk__in=drop).delete()
    log.info(
        "job %s: re-cut %d frames at %.3g s a frame into chunks of %s (kept %s, dropped %s)",
        job.pk, len(frames), sizing.seconds_per_frame, [len(c) for c in chunks],
        [t.pk for t in keep], drop,
    )  # fmt: skip
    if first is not None:
        first.refresh_from_db(fields=["frames"])
    if added > 0:
        job_id = job.pk
        transaction.on_commit(lambda: enqueue_dispatch(job_id))
    return added > 0
