"""Read-side helpers of the staff pages: a bounded number of queries whatever the job size.

Lists read the counters on RenderJob (never count frames or jobs: keyset pages); the
detail page's grid is one letter per frame, read by the database in one query
(``jobs.live``) and drawn by the browser, so a 100,000-frame job costs one query.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypedDict

from django.contrib.auth import get_user_model
from django.core.paginator import Page, Paginator
from django.db.models import Case, Count, Exists, IntegerField, OuterRef, Q, QuerySet, Value, When
from django.http import QueryDict
from django.shortcuts import get_object_or_404
from django.utils import timezone

from clusters.models import Cluster, ClusterNode
from clusters.queries import clusters_with_nodes
from projects.models import Project
from renderhub.cli import parse_id

from . import keyset, live, timing
from .choices import ACTIVE_JOB_STATES, TERMINAL_JOB_STATES, FrameState, JobState, TaskState
from .models import Frame, RenderJob, Task

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser
    from django.contrib.auth.models import User as AuthUser
    from django_stubs_ext import WithAnnotations

    User = AuthUser | AnonymousUser

    class Ranked(TypedDict):
        rank: int  # task_page's sort key


JOBS_PER_PAGE = 50
MENU_USERS = 200  # the "submitted by" menu: at most this many names
TASKS_PER_PAGE = 50
FRAMES_PER_GALLERY_PAGE = 48

# One letter per frame state: the grid's CSS classes and the live-update string.
STATE_LETTER: dict[str, str] = {
    FrameState.QUEUED: "q",
    FrameState.RUNNING: "r",
    FrameState.DONE: "d",
    FrameState.FAILED: "f",
    FrameState.CANCELLED: "c",
}


# --- jobs ---------------------------------------------------------------------------------


def visible_jobs(user: User) -> QuerySet[RenderJob]:
    return RenderJob.objects.visible_to(user).select_related(
        "project", "cluster", "software__image", "submitted_by"
    )


def get_job(user: User, pk: int) -> RenderJob:
    """The job if ``user`` may see it; 404 otherwise (never a hint that it exists)."""
    return get_object_or_404(visible_jobs(user), pk=pk)


def get_task(user: User, job_pk: int, index: int) -> Task:
    job = get_job(user, job_pk)
    task = get_object_or_404(Task, job=job, index=index)
    task.job = job  # already loaded with its relations
    return task


def get_frame(user: User, job_pk: int, number: int) -> Frame:
    job = get_job(user, job_pk)
    frame = get_object_or_404(Frame.objects.select_related("task"), job=job, number=number)
    frame.job = job
    return frame


@dataclass
class JobFilters:
    """The list pages' filters, parsed from the query string (bad values are ignored)."""

    project: int | None = None
    state: str = ""
    user: int | None = None
    q: str = ""

    @classmethod
    def from_query(cls, query: QueryDict, states: tuple[str, ...]) -> JobFilters:
        state = query.get("state", "")
        return cls(
            project=parse_id(query.get("project")),
            state=state if state in states else "",
            user=parse_id(query.get("user")),
            q=query.get("q", "").strip()[:200],
        )

    def apply(self, jobs: QuerySet[RenderJob]) -> QuerySet[RenderJob]:
        if self.project:
            jobs = jobs.filter(project_id=self.project)
        if self.state:
            jobs = jobs.filter(state=self.state)
        if self.user:
            jobs = jobs.filter(submitted_by_id=self.user)
        if self.q:
            match = Q(name__icontains=self.q) | Q(scene_url__icontains=self.q)
            pk = parse_id(self.q.removeprefix("#"))
            jobs = jobs.filter(match | Q(pk=pk) if pk else match)
        return jobs

    def query_string(self) -> str:
        """The filters as a query string, for paging links."""
        query = QueryDict(mutable=True)
        for name in ("project", "state", "user", "q"):
            if value := getattr(self, name):
                query[name] = str(value)
        return query.urlencode()


def list_jobs(user: User, query: QueryDict, *, finished: bool) -> QuerySet[RenderJob]:
    """The jobs a list page shows (all its pages): visible, in its states, filtered."""
    states = TERMINAL_JOB_STATES if finished else ACTIVE_JOB_STATES
    filters = JobFilters.from_query(query, tuple(states))
    return filters.apply(visible_jobs(user).filter(state__in=states))


def job_list(user: User, query: QueryDict, *, finished: bool) -> dict[str, Any]:
    """Context of the running or finished jobs list: one page of rows plus the filter menus.

    Bounded at any number of jobs: the page is read by keyset (``jobs.keyset``: no COUNT,
    no OFFSET), and the "submitted by" menu asks per user whether they submitted a visible
    job (an indexed EXISTS over the few users) instead of a DISTINCT over every job."""
    states = TERMINAL_JOB_STATES if finished else ACTIVE_JOB_STATES
    filters = JobFilters.from_query(query, tuple(states))
    jobs = list_jobs(user, query, finished=finished)
    key = "finished_at" if finished else "created_at"
    page = keyset.page(jobs, key, query.get("after"), query.get("before"), JOBS_PER_PAGE)
    projects = Project.objects.visible_to(user).only("id", "name")
    submitted = RenderJob.objects.filter(
        submitted_by=OuterRef("pk"), project__in=Project.objects.visible_to(user)
    )
    users = list(
        get_user_model()
        .objects.filter(Exists(submitted))
        .order_by("username")
        .only("id", "username")[:MENU_USERS]
    )
    if filters.user and all(u.pk != filters.user for u in users):
        # The chosen submitter stays in the menu even past its first MENU_USERS names.
        users += list(
            get_user_model()
            .objects.filter(Exists(submitted), pk=filters.user)
            .only("id", "username")
        )
    return {
        "page": page,
        "jobs": page.rows,
        "filters": filters,
        "states": [(s.value, s.label) for s in JobState if s in states],
        "projects": list(projects),
        "users": users,
        "finished": finished,
    }


def eta_seconds(job: RenderJob) -> float | None:
    """Seconds to go (None when ended or not measurable yet); see ``jobs.timing``."""
    found = timing.eta(job)
    return found.seconds if found else None


TaskCounts = Counter[tuple[int, str]]  # (task id, frame state) -> frames


def frame_numbers(job: RenderJob) -> list[int]:
    """Every frame number of the job, in grid order (one narrow query)."""
    return list(job.frame_set.order_by("number").values_list("number", flat=True))


def node_rows(job: RenderJob, per_task: TaskCounts) -> list[dict[str, Any]]:
    """Per node: chunks, the running chunk's CPU and frame, frames done, failures.

    Summed here from one narrow query over the job's chunks and the frame rows already
    read, instead of a GROUP BY joining every frame to its chunk.
    """
    rows: dict[str, dict[str, Any]] = {}
    chunks = job.tasks.exclude(node="").values_list(
        "id", "node", "state", "cpu_percent", "current_frame", "index"
    )
    for pk, node, state, cpu, current, index in chunks:
        row = rows.setdefault(
            node,
            {
                "node": node,
                "chunks": 0,
                "running": 0,
                "failed": 0,
                "cpu": None,
                "current_frame": None,
                "last_index": index,
                "done": 0,
                "failed_frames": 0,
            },
        )
        row["chunks"] += 1
        row["last_index"] = max(row["last_index"], index)
        if state == TaskState.RUNNING:
            row["running"] += 1
            row["cpu"] = (row["cpu"] or 0.0) + (cpu or 0.0)
            if current is not None:
                row["current_frame"] = max(current, row["current_frame"] or current)
        elif state == TaskState.FAILED:
            row["failed"] += 1
        row["done"] += per_task[(pk, FrameState.DONE)]
        row["failed_frames"] += per_task[(pk, FrameState.FAILED)]
    links = node_links(job.cluster_id)
    for row in rows.values():
        row["page"] = links.get(row["node"], "")  # the node page's name, if the node is known
    return [rows[node] for node in sorted(rows)]


def node_links(cluster_id: int) -> dict[str, str]:
    """Task.node value -> the name in its node page's URL (a cloud chunk records the VM's IP)."""
    links: dict[str, str] = {}
    rows = ClusterNode.objects.filter(cluster_id=cluster_id).values_list("name", "ip_address")
    for name, ip in rows:
        links[name] = name
        if ip:
            links.setdefault(ip, name)
    return links


def task_page(
    job: RenderJob, page_number: str | None, per_task: TaskCounts
) -> Page[WithAnnotations[Task, Ranked]]:
    """Chunks with the running and failed ones first, then by index; done counts attached."""
    order = Case(
        When(state=TaskState.RUNNING, then=Value(0)),
        When(state=TaskState.FAILED, then=Value(1)),
        default=Value(2),
        output_field=IntegerField(),
    )
    tasks = job.tasks.annotate(rank=order).order_by("rank", "index")
    page = Paginator(tasks, TASKS_PER_PAGE).get_page(page_number)
    for task in page.object_list:
        task.job = job
        task.frames_done = per_task[(task.pk, FrameState.DONE)]
    return page


def failed_frames(job: RenderJob, limit: int = 50) -> list[Frame]:
    """Failed frames with their reasons, as text (the grid shows them only as a colour)."""
    if not job.frames_failed:
        return []
    return list(
        job.frame_set.filter(state=FrameState.FAILED)
        .order_by("number")
        # job_id too: the related manager reads it to attach ``job`` (a query per row if deferred)
        .only("number", "failure_reason", "task_id", "job_id")[:limit]
    )


def gallery_page(job: RenderJob, page_number: str | None) -> Page[Frame]:
    frames = job.frame_set.filter(state=FrameState.DONE).order_by("number")
    frames = frames.only("number", "output_url", "thumbnail_url", "seconds", "job_id")
    return Paginator(frames, FRAMES_PER_GALLERY_PAGE).get_page(page_number)


# --- submission estimate --------------------------------------------------------------------


def seconds_per_frame(
    project: Project, software_id: int | None = None, scene_url: str = ""
) -> float | None:
    """Measured render seconds per frame for a scene about to be submitted (see timing)."""
    [speed] = timing.submit_speeds(project.pk, software_id, [scene_url] if scene_url else [])
    return speed.seconds_per_frame if speed else None


# --- dashboard ---------------------------------------------------------------------------


def active_jobs(user: User) -> QuerySet[RenderJob]:
    """The jobs the dashboard's running panel lists (its first 20)."""
    return visible_jobs(user).filter(state__in=ACTIVE_JOB_STATES)


def dashboard(user: User) -> dict[str, Any]:
    jobs = visible_jobs(user)
    running = list(active_jobs(user).order_by("-created_at")[:20])
    etas = live.reckoned_etas(running)
    for job in running:
        eta, reckoned = etas.get(job.pk, (None, 0.0))
        job.eta = eta  # type: ignore[attr-defined]
        # The instant it ends, counted down in the browser (the panel's version has no clock).
        job.eta_until = eta_instant(eta, reckoned)  # type: ignore[attr-defined]
        job.eta_left = left_until(job.eta_until)  # type: ignore[attr-defined]
    return {
        "running": running,
        "failures": list(jobs.filter(state=JobState.FAILED).order_by("-finished_at")[:10]),
        "clusters": clusters_with_nodes(),
    }


def eta_instant(eta: timing.Eta | None, reckoned: float) -> datetime | None:
    """When an ETA reckoned at ``reckoned`` (``time.time()``) ends."""
    if eta is None or eta.seconds is None:
        return None
    return datetime.fromtimestamp(reckoned + eta.seconds, tz=UTC)


def left_until(until: datetime | None) -> int | None:
    """Whole seconds from now to ``until``, rounded up as the browser counts them down (an
    ETA of a minute reads 1:00 until a second has passed); the text without script."""
    return max(0, math.ceil((until - timezone.now()).total_seconds())) if until else None


def frame_counts(job: RenderJob) -> TaskCounts:
    """Frames per (chunk, state) of the job: one GROUP BY, a row per chunk and state."""
    rows = job.frame_set.order_by().values_list("task_id", "state").annotate(n=Count("id"))
    return Counter({(task, state): n for task, state, n in rows})


def job_detail(
    job: RenderJob,
    chunk_page: str | None,
    frames: tuple[TaskCounts, timing.Eta | None, float] | None = None,
) -> dict[str, Any]:
    """Everything the detail page and its live partial show but the grid (eight queries,
    any job size; the grid's states come from ``jobs.live``).

    ``frames``: the frame counts per chunk, the ETA and when it was reckoned, when the
    caller has them (the parts that read every frame; ``jobs.live.frame_summary`` keeps
    them per version). The ETA is shown as the instant it ends (``eta_until``), which the
    browser counts down to, and as the seconds left now for pages without script."""
    if frames is None:
        frames = (frame_counts(job), timing.eta(job), time.time())
    per_task, eta, reckoned = frames
    until = eta_instant(eta, reckoned)
    counts: Counter[str] = Counter()
    for (_, state), n in per_task.items():
        counts[state] += n
    return {
        "job": job,
        "frame_total": sum(counts.values()),
        "counts": {state: counts[state] for state in STATE_LETTER},
        "eta": eta,
        "eta_until": until,
        "eta_left": left_until(until),
        "seconds_per_frame": job.render_seconds / job.frames_done if job.frames_done else None,
        "nodes": node_rows(job, per_task),
        "tasks": task_page(job, chunk_page, per_task),
        "failed_frames": failed_frames(job),
    }


@dataclass(frozen=True)
class Estimate:
    frames: int
    seconds_per_frame: float | None
    parallel: int
    wall_seconds: float | None
    node_hours: float | None
    cost: Decimal | None
    basis: str = ""  # what the speed was measured on, as the page says it


def estimate(
    project: Project,
    software_id: int | None,
    cluster: Cluster | None,
    frames: int,
    scenes: int | Sequence[str],
    nodes: int | None,
    chunk_size: int | None,
) -> Estimate:
    """Time (and, for clusters with an hourly price, cost) from measured speed: each scene's
    own earlier frames with this software first, then the software's, then the project's.

    Chunks run in parallel on up to ``nodes`` nodes (or, with a chunk size, on the
    cluster's nodes); scenes are separate jobs that share those nodes.
    """
    urls = [] if isinstance(scenes, int) else list(scenes)
    count = max(1, scenes if isinstance(scenes, int) else len(urls))
    total = frames * count
    if chunk_size:
        chunks = -(-frames // chunk_size) * count
        parallel = min(chunks, (cluster.desired_nodes if cluster else 1) or 1)
    else:
        parallel = min(nodes or (cluster.desired_nodes if cluster else 1) or 1, frames)
    parallel = max(1, parallel)
    speeds = timing.submit_speeds(project.pk, software_id, urls)
    if not total or not all(speeds):
        return Estimate(total, None, parallel, None, None, None, _basis(speeds))
    per_scene = [speed.seconds_per_frame for speed in speeds if speed]
    # Scenes given by count only (no URLs) all take the one fallback speed.
    work = frames * (sum(per_scene) if urls else per_scene[0] * count)
    spf = work / total
    wall = work / parallel
    node_hours = work / 3600
    price = getattr(cluster, "hourly_price", None)
    cost = None
    if price:
        cost = (Decimal(str(price)) * Decimal(str(node_hours))).quantize(Decimal("0.01"))
    return Estimate(total, spf, parallel, wall, node_hours, cost, _basis(speeds))


def _basis(speeds: list[timing.Speed | None]) -> str:
    """ "from 12 frames of this scene", or how many scenes had which basis."""
    known = [s for s in speeds if s]
    if not known:
        return ""
    if len(speeds) == 1:
        return speeds[0].label if speeds[0] else ""
    labels = Counter(
        "its own earlier frames" if s.basis == "scene" else s.label.removeprefix("from ")
        for s in known
    )
    parts = [f"{n} scene{'' if n == 1 else 's'} from {label}" for label, n in labels.items()]
    return "; ".join(parts)
