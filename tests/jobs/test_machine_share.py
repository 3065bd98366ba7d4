"""A frame's cost as if its node were full (jobs.machine_share): a frame rendered while
the node's other slot idled had both cores, and the next job of the scene must not take
it for a cheap one."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from clusters.models import ClusterNode
from jobs import services
from jobs.choices import FrameState, JobState, TaskState
from jobs.models import Frame, RenderJob, Task, TaskAttempt
from tests.jobs.test_adaptive_chunks import assert_each_frame_once, submit
from tests.jobs.test_balanced_chunks import drain

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.embedded,
    pytest.mark.usefixtures("adaptive_settings"),
]


def two_core_node(cluster: Any, name: str = "n1", **facts: Any) -> ClusterNode:
    values = {"cpu_count": 2, "concurrency": 2, **facts}
    return ClusterNode.objects.create(cluster=cluster, name=name, **values)


def attempt(task: Task, node: str, began: datetime, ended: datetime | None) -> None:
    Task.objects.filter(pk=task.pk).update(node=node, state=TaskState.RUNNING)
    task.node = node
    number = task.history.count() + 1
    TaskAttempt.objects.create(
        task=task, job=task.job, number=number, node=node, started_at=began, finished_at=ended
    )


def report(task: Task, number: int, began: datetime, seconds: float) -> float:
    """The frame as a node reports it: started at ``began``, done after ``seconds``."""
    Frame.objects.filter(task=task, number=number).update(
        state=FrameState.RUNNING, started_at=began
    )
    services.frame_done(task, number, seconds=seconds, output_url="", thumbnail_url="")
    return Frame.objects.get(task=task, number=number).cost_seconds


@pytest.fixture
def one_chunk(project, fake_software, cluster, scene_url) -> Task:
    job = submit(project, fake_software, cluster, scene_url, frames="1-4", nodes=2)
    return job.tasks.order_by("index").first()


@pytest.mark.parametrize(
    ("other_node", "other_ends", "expected"),
    [
        (None, None, 8.0),  # alone on two cores: twice its seconds on a full node
        ("n1", 30, 4.0),  # beside another chunk throughout: its seconds
        ("n1", 12, 4.0 * 2 / 1.5),  # the other chunk ended halfway: 1.5 renderers
        ("n2", None, 8.0),  # a chunk on another node shares none of this one's cores
    ],
    ids=["alone", "beside-another-chunk", "shared-half-its-time", "other-node-busy"],
)
def test_a_frame_costs_its_seconds_scaled_to_a_full_nodes_share(
    cluster, one_chunk, other_node, other_ends, expected
) -> None:
    """The frame rendered 10-14 s into its chunk, on node n1 (two cores, two slots)."""
    two_core_node(cluster)
    two_core_node(cluster, "n2")
    start = timezone.now() - timedelta(seconds=60)
    attempt(one_chunk, "n1", start, None)
    if other_node:
        job = one_chunk.job
        other = submit(job.project, job.software, cluster, job.scene_url, frames="1")
        ends = start + timedelta(seconds=other_ends) if other_ends else None
        attempt(other.tasks.first(), other_node, start, ends)
    frame = one_chunk.frames[0]
    cost = report(one_chunk, frame, start + timedelta(seconds=10), 4.0)
    assert cost == pytest.approx(expected)


@pytest.mark.parametrize(
    ("threads", "facts", "expected"),
    [
        (1, {}, 4.0),  # one thread per renderer, a core per slot: alone is no faster
        (0, {"cpu_count": None}, 4.0),  # the node never said its cores
        (0, {"concurrency": 1}, 4.0),  # one slot: it is always full
        (0, {"cpu_count": 8, "concurrency": 4}, 16.0),  # all 8 cores against 2 of a full node
        # What the node said of its renderers wins over the manager's setting:
        (0, {"render_threads": 1}, 4.0),  # a node started with --threads 1
        (1, {"render_threads": 0}, 8.0),  # a node whose renderers use every core
        (1, {"render_threads": None}, 4.0),  # an older node that did not say: the manager's
    ],
)
def test_the_share_follows_the_nodes_cores_slots_and_threads(
    settings, cluster, one_chunk, threads, facts, expected
) -> None:
    settings.RENDER_THREADS = threads
    two_core_node(cluster, **facts)
    start = timezone.now() - timedelta(seconds=60)
    attempt(one_chunk, "n1", start, None)
    frame = one_chunk.frames[0]
    assert report(one_chunk, frame, start + timedelta(seconds=10), 4.0) == pytest.approx(expected)


STARTUP = 1.0  # the renderer's start-up in each chunk


def true_cost(number: int) -> float:
    return 0.2 * number  # a full node's seconds: the last frame ten times the first's


def render_in_two_even_chunks(project: Any, software: Any, cluster: Any, scene: str) -> None:
    """The scene's first job, frames 1-12 and 13-24 on the two slots of one node: the slot
    with the cheap half ends first and the other renders its last frames alone, on both
    cores, in half their cost."""
    job = submit(project, software, cluster, scene, frames="1-24", nodes=2, chunk_seconds=None)
    cheap, dear = job.tasks.order_by("index")
    assert cheap.frames == list(range(1, 13)) and dear.frames == list(range(13, 25))
    start = timezone.now() - timedelta(minutes=5)
    cheap_end = STARTUP + sum(true_cost(n) for n in cheap.frames)
    at, walls = STARTUP, []
    for number in dear.frames:  # at one cost-second a second until cheap ends, then two
        shared = min(true_cost(number), max(0.0, cheap_end - at))
        walls.append((number, at, shared + (true_cost(number) - shared) / 2))
        at += walls[-1][2]
    attempt(cheap, "n1", start, start + timedelta(seconds=cheap_end))
    attempt(dear, "n1", start, start + timedelta(seconds=at))
    at = STARTUP
    for number in cheap.frames:
        report(cheap, number, start + timedelta(seconds=at), true_cost(number))
        at += true_cost(number)
    for number, began, wall in walls:
        report(dear, number, start + timedelta(seconds=began), wall)
    job.tasks.update(state=TaskState.DONE)
    RenderJob.objects.filter(pk=job.pk).update(state=JobState.FINISHED, frames_done=24)


def spread(job: RenderJob) -> float:
    """How far apart the two slots end, taking the job's chunks in turn at their true
    costs."""
    ends = drain([t.frames for t in job.tasks.order_by("index")], true_cost, 2, STARTUP)
    return max(ends) - min(ends)


def test_the_next_job_is_cut_by_the_full_node_cost_of_frames_rendered_alone(
    project, fake_software, cluster, scene_url
) -> None:
    two_core_node(cluster)
    render_in_two_even_chunks(project, fake_software, cluster, scene_url)
    first = RenderJob.objects.get()
    measured = dict(first.frame_set.values_list("number", "cost_seconds"))
    for number in (1, 12, 13, 24):  # shared, and alone for the last frames of the dear half
        assert measured[number] == pytest.approx(true_cost(number), rel=0.1)
    walls = dict(first.frame_set.values_list("number", "seconds"))
    assert walls[24] == pytest.approx(true_cost(24) / 2)

    job = submit(project, fake_software, cluster, scene_url, frames="1-24")
    assert spread(job) <= true_cost(24)  # within one frame
    assert_each_frame_once(job, list(range(1, 25)))

    # Cut by the wall seconds, one slot would have idled for over two dear frames.
    Frame.objects.filter(job=first).update(cost_seconds=None)
    wall_cut = submit(project, fake_software, cluster, scene_url, frames="1-24")
    assert spread(wall_cut) > 2 * true_cost(24)


@pytest.mark.parametrize(("beside", "expected"), [(False, 4.0), (True, 2.0)])
def test_frames_a_render_node_reports_in_a_batch_get_their_full_node_cost(
    project, fake_software, cluster, storage_root, beside, expected
) -> None:
    """The render nodes' path: frames done arrive in batches through the event drain
    (jobs.events), started and done in one batch."""
    from jobs.events import apply_events
    from tests.jobs.test_node_events import events_for, running_job

    (storage_root / "scenes").mkdir(parents=True, exist_ok=True)
    (storage_root / "scenes" / "shot.blend").write_bytes(b"BLENDER-v304 a stand-in")
    job = running_job(project, fake_software, cluster, chunks=2, frames=3)
    two_core_node(cluster, "node-x")
    first, second = job.tasks.order_by("index")
    start = timezone.now() - timedelta(seconds=60)
    attempt(first, "node-x", start, None)
    if beside:
        attempt(second, "node-x", start, None)

    applied = apply_events(events_for(first, first.frames))  # 2.0 s a frame

    assert applied.frames_done == 3
    costs = job.frame_set.filter(task=first).values_list("cost_seconds", flat=True)
    assert list(costs) == [pytest.approx(expected)] * 3


@pytest.mark.parametrize(
    ("sent", "stored"), [(1, 1), (0, 0), (None, None), ("8", None), (-2, None)]
)
def test_a_render_nodes_report_carries_its_renderer_threads(cluster, sent, stored) -> None:
    from jobs.node_requests import node_report

    report = {"node": "n9@node", "clusters": [cluster.name], "cpu_count": 2, "concurrency": 2}
    node_report({**report, "render_threads": sent})

    assert ClusterNode.objects.get(name="n9@node").render_threads == stored
