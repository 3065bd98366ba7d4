"""What the manager decides reaches a node without keys within one heartbeat (cancel,
pause now), and a node that dies mid-chunk loses no frame: the reaper gives its chunk
to another node, which finishes it, and no frame is counted twice."""

from __future__ import annotations

import time
from typing import Any

import psutil
import pytest

from jobs import scheduling, services
from jobs.choices import FrameState, JobState, TaskState
from tests.jobs.conftest import submit_one
from tests.workers import wait_for

from .conftest import needs_redis

pytestmark = [pytest.mark.django_db(transaction=True), needs_redis]


def renderers(nodes: Any, name: str) -> list[psutil.Process]:
    """The stand-in renderers running under node ``name``."""
    root = psutil.Process(nodes.procs[name].pid)
    found = []
    for proc in root.children(recursive=True):
        try:
            if any("fake_render.py" in part for part in proc.cmdline()):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def test_cancel_stops_the_nodes_renderer_within_a_heartbeat(
    project, fake_software, cluster, scene_url, nodes
) -> None:
    nodes.start("a", cluster)
    job = submit_one(
        project, fake_software, cluster, scene_url, frames="1-30", nodes=1,
        parameters={"mode": "steady"},
    )  # fmt: skip
    wait_for(lambda: job.frame_set.filter(state=FrameState.DONE).count() >= 2, timeout=60)
    assert renderers(nodes, "a"), "the renderer runs on the node"

    assert services.cancel_job(job).ok
    cancelled = time.monotonic()
    wait_for(lambda: not renderers(nodes, "a"), timeout=15, what="the node kills its renderer")
    # One heartbeat (1 s here), the drain's answer, and the agent's grace to stop.
    assert time.monotonic() - cancelled < 8
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED
    done = job.frame_set.filter(state=FrameState.DONE).count()
    time.sleep(2)
    assert job.frame_set.filter(state=FrameState.DONE).count() == done  # nothing after


def test_pause_now_puts_the_chunk_back_and_resume_finishes_it(
    project, fake_software, cluster, scene_url, nodes
) -> None:
    nodes.start("a", cluster)
    job = submit_one(
        project, fake_software, cluster, scene_url, frames="1-8", nodes=1,
        parameters={"mode": "steady"},
    )  # fmt: skip
    wait_for(lambda: job.frame_set.filter(state=FrameState.DONE).count() >= 2, timeout=60)
    assert scheduling.pause_job(job, now=True).ok
    wait_for(lambda: not renderers(nodes, "a"), timeout=15, what="the node stops the chunk")
    kept = set(job.frame_set.filter(state=FrameState.DONE).values_list("number", flat=True))
    assert len(kept) >= 2
    assert job.tasks.get().state == TaskState.QUEUED

    assert scheduling.resume_job(job).ok
    wait_for(job, timeout=90, explain=lambda: nodes.log("a")[-3000:])
    assert job.state == JobState.FINISHED
    assert job.frames_done == 8  # the frames done before the pause were not counted again
    assert kept <= set(job.frame_set.filter(state=FrameState.DONE).values_list("number", flat=True))


def test_a_node_killed_mid_chunk_loses_no_frame(
    project, fake_software, cluster, scene_url, nodes, settings
) -> None:
    settings.RENDER_STALE_AFTER = 4
    nodes.start("a", cluster)
    job = submit_one(
        project, fake_software, cluster, scene_url, frames="1-6", nodes=1,
        parameters={"mode": "steady"},
    )  # fmt: skip
    task = job.tasks.get()
    wait_for(lambda: job.frame_set.filter(state=FrameState.DONE).count() >= 2, timeout=60)
    nodes.power_cut("a")
    nodes.start("b", cluster)

    def finished() -> bool:
        services.reap_stale_tasks()  # what beat runs every RENDER_STALE_AFTER / 2 seconds
        job.refresh_from_db()
        return not job.is_active

    wait_for(finished, timeout=120, every=1.0, explain=lambda: nodes.log("b")[-3000:])
    assert job.state == JobState.FINISHED
    assert job.frames_done == 6
    assert job.frame_set.filter(state=FrameState.DONE).count() == 6
    task.refresh_from_db()
    assert task.node == "b@node" and task.attempts >= 2


def test_a_chunk_longer_than_its_grants_renews_them_with_its_heartbeats(
    project, fake_software, cluster, scene_url, nodes, settings
) -> None:
    # Grants end long before the 14 s chunk does; renewal is asked for 5 s before they end
    # (half their life), time enough for the manager to answer on a busy machine.
    settings.RENDER_GRANT_SECONDS = 10
    nodes.start("a", cluster)
    job = submit_one(
        project, fake_software, cluster, scene_url, frames="1-14", nodes=1,
        parameters={"mode": "steady"},
    )  # fmt: skip
    wait_for(job, timeout=120, explain=lambda: nodes.log("a")[-3000:])
    assert job.state == JobState.FINISHED, job.failure_reason
    assert job.frames_done == 14
    # Every frame's file was written, the last ones with grants renewed on the way.
    from renderhub import storage

    for frame in job.frame_set.all():
        backend, key = storage.resolve(frame.output_url)
        assert backend.exists(key)
    attempt = job.tasks.get().history.get()
    assert attempt.number == 1 and "frame_done frame=14" in attempt.agent_log_tail


def test_a_renderer_failing_on_every_node_fails_the_job_with_its_own_error(
    project, fake_software, cluster, scene_url, nodes
) -> None:
    """The blocklist and retries on the nodes' path: the node's failures are counted
    against it, the chunk is retried while attempts last (the only node takes it anyway),
    and the job fails with the renderer's own words."""
    from jobs.models import NodeBlock

    nodes.start("a", cluster)
    job = submit_one(
        project, fake_software, cluster, scene_url, frames="1-2", nodes=1,
        parameters={"mode": "fail"},
    )  # fmt: skip
    wait_for(job, timeout=120, explain=lambda: nodes.log("a")[-3000:])
    assert job.state == JobState.FAILED
    assert "License server unreachable (fake)" in job.failure_reason
    task = job.tasks.get()
    assert task.attempts == task.max_attempts and task.node == "a@node"
    block = NodeBlock.objects.get(job=job, node="a@node")
    assert block.failures == task.max_attempts
    assert "License server unreachable" in block.last_reason
