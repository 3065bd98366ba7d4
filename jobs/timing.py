"""How long renders take: a running job's ETA and the submit page's estimate.

Both start from measured render seconds per frame, never a guess: the job's own finished
frames; else earlier jobs of the same scene with the same software; else the software's
earlier jobs in the project (the submit page then falls back to the whole project). With
no measurement there is no estimate, and the pages say so.

The ETA spreads the work left over the slots that may run it: the chunks running now
(each with what is left of it, its current frame's elapsed time taken off) and the online
nodes of the job's cluster that are not blocklisted for it, each with its worker's slots.
Waiting chunks go to the slot that frees first, so the ETA is the time the last slot
ends. At a steady speed it goes down as work goes on, whatever the number of slots.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Max, Q, Sum
from django.utils import timezone

from clusters.choices import NodeState
from clusters.models import ClusterNode

from .choices import FrameState, TaskState
from .models import Frame, NodeBlock, RenderJob, Task

# Past this many waiting chunks on one job, the slots are filled evenly instead of one
# chunk at a time (the difference is under one chunk's time).
SIMULATED_CHUNKS = 20_000
OPEN_FRAMES = (FrameState.QUEUED, FrameState.RUNNING)
WAITING_TASKS = (TaskState.QUEUED, TaskState.HELD)


@dataclass(frozen=True)
class Speed:
    """Render seconds per frame and what they were measured on."""

    seconds_per_frame: float
    frames: int
    basis: str  # "job", "scene", "software" or "project"

    @property
    def label(self) -> str:
        frames = f"{self.frames} frame{'' if self.frames == 1 else 's'}"
        return {
            "job": f"from {frames} of this job",
            "scene": f"from {frames} of this scene",
            "software": "from this software's earlier jobs",
            "project": "from this project's earlier jobs",
        }[self.basis]


def _speed(seconds: float | None, frames: int | None, basis: str) -> Speed | None:
    if not frames or not seconds or seconds <= 0:
        return None
    return Speed(float(seconds) / int(frames), int(frames), basis)


def job_speed(job: RenderJob) -> Speed | None:
    return _speed(job.render_seconds, job.frames_done, "job")


# --- history: earlier jobs' measured speed --------------------------------------------------


SceneKey = tuple[int, int, str]  # project, software, scene URL


def scene_speeds(keys: Iterable[SceneKey]) -> dict[SceneKey, Speed | None]:
    """Per (project, software, scene): its earlier jobs' speed (one grouped query)."""
    keys = set(keys)
    found: dict[SceneKey, Speed | None] = dict.fromkeys(keys)
    if not keys:
        return found
    rows = (
        RenderJob.objects.filter(
            frames_done__gt=0,
            project_id__in={k[0] for k in keys},
            software_id__in={k[1] for k in keys},
            scene_url__in={k[2] for k in keys},
        )
        .order_by()
        .values("project_id", "software_id", "scene_url")
        .annotate(seconds=Sum("render_seconds"), frames=Sum("frames_done"))
    )
    for row in rows:
        key = (row["project_id"], row["software_id"], row["scene_url"])
        if key in found:
            found[key] = _speed(row["seconds"], row["frames"], "scene")
    return found


def software_speeds(keys: Iterable[tuple[int, int]]) -> dict[tuple[int, int], Speed | None]:
    """Per (project, software): the software's earlier jobs in the project (one query)."""
    keys = set(keys)
    found: dict[tuple[int, int], Speed | None] = dict.fromkeys(keys)
    if not keys:
        return found
    rows = (
        RenderJob.objects.filter(
            frames_done__gt=0,
            project_id__in={k[0] for k in keys},
            software_id__in={k[1] for k in keys},
        )
        .order_by()
        .values("project_id", "software_id")
        .annotate(seconds=Sum("render_seconds"), frames=Sum("frames_done"))
    )
    for row in rows:
        key = (row["project_id"], row["software_id"])
        if key in found:
            found[key] = _speed(row["seconds"], row["frames"], "software")
    return found


def project_speed(project_id: int) -> Speed | None:
    totals = RenderJob.objects.filter(project_id=project_id, frames_done__gt=0).aggregate(
        seconds=Sum("render_seconds"), frames=Sum("frames_done")
    )
    return _speed(totals["seconds"], totals["frames"], "project")


def submit_speeds(
    project_id: int, software_id: int | None, scene_urls: Sequence[str]
) -> list[Speed | None]:
    """Per scene about to be submitted: its own history with this software, else the
    software's in the project, else the project's (at most three queries)."""
    urls = list(scene_urls) or [""]
    by_scene: dict[SceneKey, Speed | None] = {}
    software: Speed | None = None
    if software_id:
        by_scene = scene_speeds((project_id, software_id, url) for url in urls if url)
        if not all(by_scene.get((project_id, software_id, url)) for url in urls):
            software = software_speeds([(project_id, software_id)])[(project_id, software_id)]
    speeds = [by_scene.get((project_id, software_id or 0, url)) or software for url in urls]
    if not all(speeds):
        fallback = project_speed(project_id)
        speeds = [s or fallback for s in speeds]
    return speeds


# --- the ETA of running jobs ---------------------------------------------------------------


@dataclass(frozen=True)
class Eta:
    seconds: float | None
    slots: int
    speed: Speed | None
    why_none: str = ""  # when there is no estimate: why, in a few words

    @property
    def label(self) -> str:
        """The ETA basis as the pages show it next to the time."""
        if self.seconds is None or self.speed is None:
            return self.why_none
        slots = f"{self.slots} slot{'' if self.slots == 1 else 's'}"
        return f"{slots}, {self.speed.seconds_per_frame:.2f} s per frame {self.speed.label}"


NO_ESTIMATE = "no estimate yet"


@dataclass
class _Work:
    running: list[float]  # seconds left of each running chunk
    waiting_frames: int = 0
    waiting_chunks: int = 0


def etas(jobs: Sequence[RenderJob], now: datetime | None = None) -> dict[int, Eta]:
    """ETA of each active job, in at most six queries whatever the number of jobs."""
    active = [job for job in jobs if job.is_active]
    if not active:
        return {}
    now = now or timezone.now()
    ids = [job.pk for job in active]
    speeds = _speeds(active)
    running: dict[int, list[tuple[int, datetime | None]]] = defaultdict(list)
    rows = (
        Task.objects.filter(job_id__in=ids, state=TaskState.RUNNING)
        .order_by()
        .annotate(
            left=Count("frame_set", filter=Q(frame_set__state__in=OPEN_FRAMES)),
            current_since=Max(
                "frame_set__started_at", filter=Q(frame_set__state=FrameState.RUNNING)
            ),
        )
        .values_list("job_id", "left", "current_since")
    )
    for job_id, left, since in rows:
        running[job_id].append((left, since))
    waiting = {
        row["job_id"]: (row["frames"], row["chunks"])
        for row in Frame.objects.filter(
            job_id__in=ids, task__state__in=WAITING_TASKS, state__in=OPEN_FRAMES
        )
        .order_by()
        .values("job_id")
        .annotate(frames=Count("id"), chunks=Count("task_id", distinct=True))
    }
    capacity = _capacity(active, now)
    result = {}
    for job in active:
        speed = speeds.get(job.pk)
        if speed is None:
            result[job.pk] = Eta(None, 0, None, NO_ESTIMATE)
            continue
        spf = speed.seconds_per_frame
        work = _Work([_chunk_left(left, since, spf, now) for left, since in running[job.pk]])
        work.waiting_frames, work.waiting_chunks = waiting.get(job.pk, (0, 0))
        slots = max(len(work.running), capacity.get(job.pk, 0))
        if slots == 0:
            result[job.pk] = Eta(None, 0, speed, "no node online may take it")
            continue
        result[job.pk] = Eta(finish_seconds(work, spf, slots), slots, speed)
    return result


def eta(job: RenderJob, now: datetime | None = None) -> Eta | None:
    """The job's ETA; None for a job that has ended."""
    return etas([job], now).get(job.pk)


def _chunk_left(left: int, since: datetime | None, spf: float, now: datetime) -> float:
    """Seconds left of a running chunk: its open frames, less what its current frame did."""
    if left <= 0:
        return 0.0
    done_of_current = (now - since).total_seconds() if since else 0.0
    return (left - 1) * spf + max(0.0, spf - max(0.0, done_of_current))


def finish_seconds(work: _Work, spf: float, slots: int) -> float:
    """When the last slot ends: running chunks hold their slots, waiting chunks (the same
    size each, their frames shared out) go one by one to the slot that frees first."""
    free = sorted(work.running + [0.0] * max(0, slots - len(work.running)))
    if not work.waiting_chunks:
        return max(free, default=0.0)
    chunk = work.waiting_frames / work.waiting_chunks * spf
    if work.waiting_chunks > SIMULATED_CHUNKS:
        total = sum(free) + work.waiting_chunks * chunk
        return max(max(free), total / len(free))
    for _ in range(work.waiting_chunks):
        heapq.heappush(free, heapq.heappop(free) + chunk)
    return max(free)


def _speeds(jobs: Sequence[RenderJob]) -> dict[int, Speed | None]:
    """Each job's own speed, else its scene's, else its software's (two grouped queries)."""
    speeds = {job.pk: job_speed(job) for job in jobs}
    new = [job for job in jobs if speeds[job.pk] is None]
    if not new:
        return speeds
    # A job without a finished frame adds nothing to these sums: no need to leave it out.
    by_scene = scene_speeds((j.project_id, j.software_id, j.scene_url) for j in new)
    for job in new:
        speeds[job.pk] = by_scene[(job.project_id, job.software_id, job.scene_url)]
    still = [job for job in new if speeds[job.pk] is None]
    if still:
        by_software = software_speeds((j.project_id, j.software_id) for j in still)
        for job in still:
            speeds[job.pk] = by_software[(job.project_id, job.software_id)]
    return speeds


def job_slots(job: RenderJob) -> int:
    """The slots of the job's cluster's online nodes not blocklisted for it (0: none online)."""
    return _capacity([job], timezone.now()).get(job.pk, 0)


def _capacity(jobs: Sequence[RenderJob], now: datetime) -> dict[int, int]:
    """Per job: the slots of its cluster's online nodes that are not blocklisted for it."""
    cutoff = now - timedelta(seconds=settings.NODE_OFFLINE_AFTER)
    nodes = (
        ClusterNode.objects.filter(
            cluster_id__in={job.cluster_id for job in jobs}, last_seen__gte=cutoff
        )
        .exclude(state=NodeState.OFFLINE)
        .values_list("cluster_id", "name", "ip_address", "concurrency")
    )
    by_cluster: dict[int, list[tuple[set[str], int]]] = defaultdict(list)
    for cluster_id, name, ip, slots in nodes:
        # Cloud chunks name their node by IP address, worker chunks by worker name.
        by_cluster[cluster_id].append(({name, ip} if ip else {name}, slots or 1))
    blocked: dict[int, set[str]] = defaultdict(set)
    if limit := settings.RENDER_BLOCKLIST_AFTER:
        blocks = NodeBlock.objects.filter(
            job_id__in=[job.pk for job in jobs], failures__gte=limit
        ).values_list("job_id", "node")
        for job_id, node in blocks:
            blocked[job_id].add(node)
    return {
        job.pk: sum(
            slots for names, slots in by_cluster[job.cluster_id] if not names & blocked[job.pk]
        )
        for job in jobs
    }
