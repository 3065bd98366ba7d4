"""Adaptive chunks cut from what was measured (jobs.frame_costs, jobs.chunking.plan): even
frames go one balanced share per slot, even to the node that claims second; a scene
rendered before is cut by each frame's cost there; the renderer's measured start-up sets
the least a chunk holds; chunks running on other slots are counted with what is left."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from jobs import chunking, frame_costs, runner, services
from jobs.choices import FrameState, JobState, TaskState
from jobs.models import Frame, RenderJob, TaskAttempt
from tests.jobs.test_adaptive_chunks import assert_each_frame_once, sizes, submit

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.embedded,
    pytest.mark.usefixtures("adaptive_settings"),
]


def rendered_before(project: Any, software: Any, cluster: Any, scene: str, cost: Any) -> None:
    """A finished earlier job of the scene whose frame n took ``cost(n)`` seconds."""
    job = submit(project, software, cluster, scene, frames="1-24", nodes=1)
    job.tasks.update(state=TaskState.DONE)
    for frame in job.frame_set.all():
        Frame.objects.filter(pk=frame.pk).update(state=FrameState.DONE, seconds=cost(frame.number))
    RenderJob.objects.filter(pk=job.pk).update(
        state=JobState.FINISHED,
        frames_done=24,
        render_seconds=sum(cost(n) for n in range(1, 25)),
    )


def test_even_frames_are_one_share_per_slot_whoever_claims_second(
    project, fake_software, cluster, scene_url
) -> None:
    """Two idle slots claim at once: the second node gets the other half, not a quarter and
    then the rest (two start-ups on one slot, the other idle at the end)."""
    rendered_before(project, fake_software, cluster, scene_url, lambda n: 0.6)
    job = submit(project, fake_software, cluster, scene_url, frames="1-24")
    assert sizes(job) == [12, 12]
    first, _ = runner.claim(job.tasks.get(index=0).pk, "n1")
    assert first.frames == list(range(1, 13))
    second, _ = runner.claim(job.tasks.get(index=1).pk, "n2")
    assert second.frames == list(range(13, 25))
    assert sizes(job) == [12, 12]
    assert_each_frame_once(job, list(range(1, 25)))


def test_a_scene_rendered_before_is_cut_by_each_frames_cost(
    project, fake_software, cluster, scene_url
) -> None:
    """Frames that got ten times dearer toward the end: the two chunks hold equal work,
    not equal frame counts; the dear end goes first."""
    rendered_before(project, fake_software, cluster, scene_url, lambda n: 0.2 * n)
    job = submit(project, fake_software, cluster, scene_url, frames="1-24")
    chunks = [t.frames for t in job.tasks.order_by("index")]
    assert len(chunks) == 2 and len(chunks[0]) < len(chunks[1])
    assert chunks[0][-1] == 24 and chunks[1][0] == 1  # each chunk in frame order
    work = [sum(0.2 * n for n in chunk) for chunk in chunks]
    assert abs(work[0] - work[1]) <= 0.2 * 24  # within one frame
    assert_each_frame_once(job, list(range(1, 25)))


def test_a_slower_machine_scales_the_scenes_history(
    project, fake_software, cluster, scene_url
) -> None:
    """This job's first frames took twice what the history says: the history's shape
    stays, the seconds follow this job."""
    rendered_before(project, fake_software, cluster, scene_url, lambda n: 0.2 * n)
    job = submit(project, fake_software, cluster, scene_url, frames="1-24", chunk_seconds=30)
    for number in (1, 2):
        Frame.objects.filter(job=job, number=number).update(
            state=FrameState.DONE, seconds=2 * 0.2 * number
        )
    recent = chunking.recent_seconds(job, 2)
    mean = sum(seconds for _, seconds in recent) / len(recent)
    costs = frame_costs.predict(job, list(range(3, 25)), recent, mean)
    assert costs.of(24) == pytest.approx(2 * 0.2 * 24)
    assert costs.of(10) == pytest.approx(2 * 0.2 * 10)
    assert costs.confident  # every frame left has its own history


def test_the_measured_start_up_sets_the_least_a_chunk_holds(
    project, fake_software, cluster, scene_url
) -> None:
    """This scene's chunks took 3 s to reach their first frame: no chunk is cut below four
    start-ups (12 s) of work, where the setting's 1 s would allow 4 s; the scene's next job
    starts from the same measurement."""
    rendered_before(project, fake_software, cluster, scene_url, lambda n: 0.5)
    job = submit(project, fake_software, cluster, scene_url, frames="1-200")
    assert frame_costs.startup_seconds(job) == 1.0  # nothing measured: the setting
    task, attempt = runner.claim(job.tasks.get(index=0).pk, "n1")
    began = TaskAttempt.objects.get(pk=attempt.pk).started_at
    Frame.objects.filter(job=job, number=task.frames[0]).update(
        started_at=began + timedelta(seconds=3)
    )
    services.frame_done(task, task.frames[0], seconds=0.5, output_url="", thumbnail_url="")
    assert frame_costs.startup_seconds(job) == pytest.approx(3.0)
    sizing = chunking.sizing_for(job, list(range(101, 201)))
    assert sizing.startup_seconds == pytest.approx(3.0) and sizing.least_seconds == 12.0
    # Costs not trusted (one frame measured): half a share, but never below 12 s.
    short = chunking.Sizing(**{**sizing.__dict__, "busy": (50.0,), "target_seconds": 60})
    assert min(len(c) for c in chunking.plan(list(range(101, 201)), short)[:-1]) >= 24
    later = submit(project, fake_software, cluster, scene_url, frames="1-10")
    assert frame_costs.startup_seconds(later) == pytest.approx(3.0)


def test_a_chunk_running_elsewhere_is_counted_with_what_is_left_of_it() -> None:
    """One slot still has 10 s to go, the other is free, 12 s of work is left: the free
    slot takes 11 s, so that both end together (each new chunk paying a 1 s start-up)."""
    sizing = chunking.Sizing(
        target_seconds=60,
        seconds_per_frame=1.0,
        slots=2,
        startup_seconds=1.0,
        frame_count=100,
        costs=frame_costs.FrameCosts(1.0, confident=True),
        busy=(10.0,),
    )
    chunks = chunking.plan(list(range(1, 13)), sizing)
    assert [len(c) for c in chunks] == [11, 1]
    assert chunking.level(12.0, [0.0, 10.0], 1.0) == pytest.approx(12.0)


def drain(chunks: list[list[int]], cost: Any, slots: int, startup: float) -> list[float]:
    """When each slot ends if the slots take the chunks in order, each as it frees."""
    ends = [0.0] * slots
    for chunk in chunks:
        slot = ends.index(min(ends))
        ends[slot] += startup + sum(cost(n) for n in chunk)
    return ends


def uneven_sizing(cost: Any, target: float) -> chunking.Sizing:
    return chunking.Sizing(
        target_seconds=target,
        seconds_per_frame=sum(cost(n) for n in range(1, 25)) / 24,
        slots=2,
        startup_seconds=1.0,
        frame_count=24,
        costs=frame_costs.FrameCosts(1.0, {n: cost(n) for n in range(1, 25)}, confident=True),
    )


@pytest.mark.parametrize("target", [10, 20, 60])
def test_a_queue_whose_last_frames_are_dear_ends_with_cheap_ones(target: float) -> None:
    """The uneven benchmark scene's shape (frame 24 costs twelve times frame 1): cut from
    the last frame back, the queue ends with cheap frames and the two slots end within a
    cheap frame of each other (cut in frame order, the last chunks were single dear frames
    and the slots ended seconds apart)."""

    def cost(n: int) -> float:
        return 0.5 + 0.25 * (n - 1)

    sizing = uneven_sizing(cost, target)
    chunks = chunking.plan(list(range(1, 25)), sizing)
    assert chunks[0][-1] == 24 and 1 in chunks[-1]
    assert sorted(n for c in chunks for n in c) == list(range(1, 25))
    assert all(c == sorted(c) for c in chunks)
    ends = drain(chunks, cost, 2, 1.0)
    assert max(ends) - min(ends) <= cost(2)


@pytest.mark.parametrize(
    "cost",
    [lambda n: 1.0, lambda n: 1.0 + 0.1 * (n % 3), lambda n: 6.0 - 0.2 * n],
    ids=["even", "noisy", "dear-first-frames"],
)
def test_a_queue_without_a_dear_end_is_cut_in_frame_order(cost: Any) -> None:
    chunks = chunking.plan(list(range(1, 25)), uneven_sizing(cost, 10))
    assert [n for c in chunks for n in c] == list(range(1, 25))
