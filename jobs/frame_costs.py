"""What a job's frames will cost, and what starting the renderer costs, as measured: the
inputs of adaptive chunk sizing (``jobs.chunking``).

- **Per frame.** Every frame is counted at its cost on a full node (``jobs.machine_share``:
  a frame rendered while the node's other slots idled had more cores than the plan gives
  it). The job's own recent frames give its speed now (``mean``). Where the same
  scene was rendered before with the same software in the project, each frame's time there
  is a prediction of that frame's time here (scenes whose frames get dearer toward the end
  are the rule, not the exception), scaled by how fast this job runs against that history
  on the frames both rendered. Frames with no history cost the mean.
- **Confidence.** With per-frame history, or when the frames measured so far are even, the
  sizing cuts each slot one balanced share; otherwise it keeps half a share back for the
  surprises (``confident``).
- **Start-up.** What a chunk costs before its first frame begins (the agent, the sandbox,
  the renderer loading the scene): measured on the job's recent attempts, else on the
  scene's last job, else ``RENDER_CHUNK_STARTUP_SECONDS``.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db.models import Q
from django.db.models.functions import Coalesce

from .choices import FrameState
from .models import Frame, RenderJob, TaskAttempt

EVEN_SPREAD = 0.25  # coefficient of variation under which measured frames count as even
STARTUP_ATTEMPTS = 8  # the latest attempts a start-up is measured on
STARTUP_BOUNDS = (0.05, 600.0)
# A frame's seconds as if its node's slots were all busy (jobs.machine_share); frames
# recorded before that was measured keep their wall seconds.
FULL_NODE_SECONDS = Coalesce("cost_seconds", "seconds")


@dataclass(frozen=True)
class FrameCosts:
    """Predicted render seconds of a job's frames."""

    mean: float
    per_frame: dict[int, float] = field(default_factory=dict)
    confident: bool = False

    def of(self, number: int) -> float:
        return self.per_frame.get(number, self.mean)

    def total(self, numbers: Iterable[int]) -> float:
        return sum(self.of(n) for n in numbers)


def even(seconds: Sequence[float]) -> bool:
    """At least two measured frames whose times spread little around their mean."""
    if len(seconds) < 2:
        return False
    mean = statistics.fmean(seconds)
    return mean > 0 and statistics.pstdev(seconds) / mean <= EVEN_SPREAD


def _history(job: RenderJob, numbers: Q) -> dict[int, float]:
    """Each of ``numbers``' time in the latest earlier job of the scene that rendered it."""
    rows = (
        Frame.objects.filter(
            numbers,
            job__project_id=job.project_id,
            job__software_id=job.software_id,
            job__scene_url=job.scene_url,
            state=FrameState.DONE,
            seconds__gt=0,
        )
        .exclude(job_id=job.pk)
        .order_by("number", "-job_id")
        .values_list("number", FULL_NODE_SECONDS)
    )
    found: dict[int, float] = {}
    for number, seconds in rows:
        found.setdefault(number, float(seconds or 0.0))
    return found


def predict(
    job: RenderJob, frames: Sequence[int], recent: Sequence[tuple[int, float]], mean: float
) -> FrameCosts:
    """Costs of ``frames`` for ``job`` running at ``mean`` s a frame (``recent``: its own
    latest frames, number and seconds; empty before its first frame ends)."""
    measured = [seconds for _, seconds in recent]
    history = _history(job, Q(number__gte=min(frames), number__lte=max(frames))) if frames else {}
    if not history:
        return FrameCosts(mean, confident=even(measured))
    # How fast this job runs against the history, on the frames both rendered.
    then = _history(job, Q(number__in=[n for n, _ in recent])) if recent else {}
    both = [(seconds, then[n]) for n, seconds in recent if n in then]
    scale = sum(now for now, _ in both) / sum(was for _, was in both) if both else 1.0
    per_frame = {n: seconds * scale for n, seconds in history.items()}
    covered = all(n in per_frame for n in frames)
    return FrameCosts(mean, per_frame, confident=covered or even(measured))


def _first_frames(attempts: list[tuple[int, datetime | None, datetime | None]]) -> list[float]:
    """Seconds from each attempt's start to its first frame starting."""
    starts: dict[int, list[datetime]] = {}
    rows = Frame.objects.filter(
        task_id__in={task for task, _, _ in attempts}, started_at__isnull=False
    ).values_list("task_id", "started_at")
    for task, started in rows:
        if task is not None and started is not None:
            starts.setdefault(task, []).append(started)
    waits = []
    for task, began, ended in attempts:
        if began is None:
            continue
        firsts = [s for s in starts.get(task, []) if s >= began and (ended is None or s <= ended)]
        if firsts:
            waits.append((min(firsts) - began).total_seconds())
    return waits


def startup_seconds(job: RenderJob) -> float:
    """The renderer's start-up per chunk, as measured (see the module's docstring)."""
    fields = ("task_id", "started_at", "finished_at")
    recent = TaskAttempt.objects.filter(started_at__isnull=False).order_by("-started_at")
    attempts = list(recent.filter(job=job).values_list(*fields)[:STARTUP_ATTEMPTS])
    waits = _first_frames(attempts) if attempts else []
    if not waits:
        earlier = (
            RenderJob.objects.filter(
                project_id=job.project_id,
                software_id=job.software_id,
                scene_url=job.scene_url,
                frames_done__gt=0,
            )
            .exclude(pk=job.pk)
            .order_by("-pk")
            .values_list("pk", flat=True)
            .first()
        )
        if earlier is not None:
            attempts = list(recent.filter(job_id=earlier).values_list(*fields)[:STARTUP_ATTEMPTS])
            waits = _first_frames(attempts)
    if not waits:
        return float(settings.RENDER_CHUNK_STARTUP_SECONDS)
    low, high = STARTUP_BOUNDS
    return min(high, max(low, statistics.median(waits)))
