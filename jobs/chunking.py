"""Adaptive chunks: a job's unstarted frames are a work queue, cut into chunks of about
``chunk_seconds`` of measured render time, and cut again whenever a node takes a chunk
and whenever a chunk ends, so that the last chunks end together.

How big a chunk is (``plan``): at most ``chunk_seconds`` of work, and at most the share
that makes the slot taking it end when the job's other slots do (their running chunks
counted with what is left of them), or half of that share while the costs are not yet
trusted, so chunks shrink toward the end and the node taking the last ones ends about when
the others do; at least four start-ups' worth of work (measured, ``jobs.frame_costs``), so
the renderer's start-up never dominates (unless the job's own ``chunk_seconds`` asks for
less, or an even share of the job over the slots is less: idle slots cost more); and
frames left behind a chunk that would take less than a start-up go with it. A job of even
frames on two idle slots is two chunks, not a queue of chunks that each pay a start-up.
Where the scene's history says its last frames are the dear ones, the queue is cut from the
last frame back, so it ends with cheap frames that even out the slots' ends.

Seconds per frame are measured, never guessed: the job's latest finished frames (its test
frame first of all), else earlier jobs of the same scene with the same software in the
project, else that software's earlier jobs in the project (``jobs.timing``); where the
scene was rendered before, each frame costs what it cost then (``jobs.frame_costs``). Until there is
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

import heapq
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, Max, OuterRef
from django.utils import timezone

from clusters.choices import Backend

from . import frame_costs, timing
from .choices import FrameState, TaskState
from .dispatch import enqueue_dispatch
from .frame_costs import FrameCosts
from .models import Frame, RenderJob, Task

log = logging.getLogger(__name__)
OPEN_FRAMES = (FrameState.QUEUED, FrameState.RUNNING)

STARTUP_SHARE = 4  # a chunk holds at least this many start-ups' worth of render time
CHUNKS_PER_SLOT_UNMEASURED = 1
HEAD_CHUNKS_PER_SLOT = 3  # how far ahead of the nodes the queue is cut again
DEAR_END = 1.5  # the last quarter of frames costs this much more than the first: cut back


@dataclass(frozen=True)
class Sizing:
    """What a chunk's size is worked out from."""

    target_seconds: float
    seconds_per_frame: float | None
    slots: int
    startup_seconds: float
    frame_count: int  # the job's frames: an even share of them over the slots caps the least
    costs: FrameCosts | None = None  # per frame; None: each frame at seconds_per_frame
    busy: tuple[float, ...] = ()  # seconds left of the job's chunks running on other slots

    def cost(self, number: int) -> float:
        return self.costs.of(number) if self.costs else self.seconds_per_frame or 0.0

    @property
    def confident(self) -> bool:
        return bool(self.costs and self.costs.confident)

    @property
    def least_seconds(self) -> float:
        """Enough work that the renderer's start-up is at most a quarter of the chunk;
        never more than the target, nor than an even share of the job over the slots
        (idle slots cost more than a start-up)."""
        even = self.frame_count * (self.seconds_per_frame or 0.0) / max(1, self.slots)
        return min(STARTUP_SHARE * self.startup_seconds, self.target_seconds, even)


def level(work: float, free_at: Sequence[float], startup: float) -> float:
    """When the slots would all end if ``work`` seconds were spread over them, each slot
    starting its share when it frees (``free_at``) and paying one start-up first."""
    times = sorted(t + startup for t in free_at)
    spread, filled = work, 0
    for i, t in enumerate(times):
        filled = i + 1
        later = times[i + 1] if i + 1 < len(times) else math.inf
        if spread <= (later - t) * filled:
            return t + spread / filled
        spread -= (later - t) * filled
    return times[-1] + spread / max(1, filled)  # pragma: no cover  (the last step returns)


def plan(frames: Sequence[int], sizing: Sizing, later: int = 0) -> list[list[int]]:
    """Cut ``frames`` (ascending) into chunks, in ``cut_order`` (frame order, or from the
    dear end back); ``later`` more unstarted frames come after them (each at the measured
    mean). Each chunk's frames are in frame order.

    Each chunk in turn goes to the slot that frees first (the job's running chunks hold
    theirs, ``busy``) and is sized so that this slot would end when the others do if the
    rest were shared out: one balanced share when the costs are trusted (history of each
    frame, or even frames so far), half of it otherwise, so that the chunks shrink toward
    the end and a slower frame than foreseen costs little. Within ``target_seconds`` and at
    least ``least_seconds`` (four start-ups); frames left behind a chunk that would take
    less than a start-up go with it. Nothing measured: an even share per slot."""
    if not frames:
        return []
    slots = max(1, sizing.slots)
    if not sizing.seconds_per_frame:
        per_slot = math.ceil((len(frames) + later) / (CHUNKS_PER_SLOT_UNMEASURED * slots))
        return [list(frames[i : i + per_slot]) for i in range(0, len(frames), per_slot)]
    frames = cut_order(frames, sizing)
    costs = [sizing.cost(n) for n in frames]
    remaining = sum(costs) + later * sizing.seconds_per_frame
    busy = sorted(sizing.busy)[:slots]  # running chunks hold their slots, the rest are free
    free = [*busy, *[0.0] * (slots - len(busy))]
    heapq.heapify(free)
    startup, least = sizing.startup_seconds, sizing.least_seconds
    chunks: list[list[int]] = []
    start = 0
    while start < len(frames):
        now = heapq.heappop(free)
        share = level(remaining, [now, *free], startup) - now - startup
        # Untrusted costs keep half a share back, unless half is below the least a chunk
        # holds: then the shares are what is left to cut.
        cautious = share / 2 if not sizing.confident and share / 2 >= least else share
        want = min(sizing.target_seconds, max(least, cautious))
        end, taken = start, 0.0
        while end < len(frames) and (end == start or taken + costs[end] / 2 <= want):
            taken += costs[end]
            end += 1
        rest = sum(costs[end:]) + later * sizing.seconds_per_frame
        if end < len(frames) and rest < startup:
            taken, end = taken + rest, len(frames)  # not worth a start-up of its own
        chunks.append(sorted(frames[start:end]))
        remaining -= taken
        heapq.heappush(free, now + startup + taken)
        start = end
    return chunks


def cut_order(frames: Sequence[int], sizing: Sizing) -> list[int]:
    """The order the queue is cut in: frame order, or from the last frame back when the
    scene's history says its last frames are the dear end. The queue then ends at its cheap
    end, where chunks are small enough to even out the slots' ends; cut in frame order, a
    scene whose frames get dearer toward the end ends with single dear frames, and a slot
    idles while another renders the last of them."""
    if not (sizing.costs and sizing.costs.per_frame) or len(frames) < 2:
        return list(frames)
    quarter = max(1, len(frames) // 4)
    first = sum(sizing.cost(n) for n in frames[:quarter])
    last = sum(sizing.cost(n) for n in frames[-quarter:])
    return list(reversed(frames)) if last > DEAR_END * first else list(frames)


# --- what the sizes are worked out from ----------------------------------------------------


def recent_frames(slots: int) -> int:
    """How many of the job's latest frames its speed is measured on: recent enough to
    follow a scene whose frames get dearer, enough of them to even out noise."""
    return max(4, 2 * slots)


def recent_seconds(job: RenderJob, slots: int) -> list[tuple[int, float]]:
    """The job's latest finished frames: number and render seconds, each as if its node's
    slots had all been busy (``jobs.machine_share``)."""
    rows = (
        Frame.objects.filter(job=job, state=FrameState.DONE, seconds__gt=0)
        .order_by("-finished_at")
        .values_list("number", frame_costs.FULL_NODE_SECONDS)[: recent_frames(slots)]
    )
    return [(number, float(seconds or 0.0)) for number, seconds in rows]


def seconds_per_frame(
    job: RenderJob, slots: int, recent: list[tuple[int, float]] | None = None
) -> float | None:
    """The job's latest finished frames' mean, else its history (``jobs.timing``)."""
    recent = recent_seconds(job, slots) if recent is None else recent
    if recent:
        return sum(seconds for _, seconds in recent) / len(recent)
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


def sizing_for(job: RenderJob, frames: Sequence[int] = (), running: int | None = None) -> Sizing:
    """How to cut ``frames`` of ``job``: its measured speed, each frame's predicted cost,
    its measured start-up, and what is left of its chunks running on other slots (all but
    ``running``, the chunk being claimed)."""
    slots = slots_for(job)
    recent = recent_seconds(job, slots)
    spf = seconds_per_frame(job, slots, recent)
    costs = frame_costs.predict(job, frames, recent, spf) if spf else None
    return Sizing(
        target_seconds=float(job.chunk_seconds or settings.RENDER_CHUNK_SECONDS or 60),
        seconds_per_frame=spf,
        slots=slots,
        startup_seconds=frame_costs.startup_seconds(job) if spf else 0.0,
        frame_count=job.frame_count,
        costs=costs,
        busy=_busy(job, costs, running) if costs else (),
    )


def _busy(job: RenderJob, costs: FrameCosts, running: int | None) -> tuple[float, ...]:
    """Seconds left of each of the job's running chunks (but ``running``): their open
    frames' costs, less what the frame rendering now has done."""
    now = timezone.now()
    left: dict[int, float] = {}
    rows = (
        Frame.objects.filter(job=job, task__state=TaskState.RUNNING, state__in=OPEN_FRAMES)
        .exclude(task_id=running or 0)
        .values_list("task_id", "number", "started_at")
    )
    for task_id, number, started in rows:
        cost = costs.of(number)
        done = (now - started).total_seconds() if started else 0.0
        left[task_id] = left.get(task_id, 0.0) + max(0.0, cost - max(0.0, done))
    return tuple(left.values())


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
    if seconds_per_frame(job, slots_for(job)) is None:
        return False  # nothing measured: the chunks keep the frames they were planned with
    limit = HEAD_CHUNKS_PER_SLOT * max(1, slots_for(job)) + (1 if first else 0)
    rows, later = rows[:limit], sum(len(t.frames) for t in rows[limit:])
    frames = sorted(
        Frame.objects.filter(task__in=rows, state=FrameState.QUEUED).values_list(
            "number", flat=True
        )
    )
    if not frames:
        return False
    sizing = sizing_for(job, frames, running=first.pk if first else None)
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
