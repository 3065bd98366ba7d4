"""A render worker keeps a job's Blender between the job's chunks on a slot
(RENDER_WARM_SECONDS, renderhub.node.agent_session): no start-up after a slot's first
chunk, and every frame still checked as before."""

from __future__ import annotations

import os
import re
import shutil
import time

import pytest
from PIL import Image

from jobs.choices import JobState
from renderhub import storage
from tests.conftest import build_demo_scene
from tests.jobs.conftest import submit_one as submit
from tests.workers import render_worker_for, wait_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.embedded,
    pytest.mark.blender,
    pytest.mark.skipif(shutil.which("blender") is None, reason="needs Blender"),
]

KEPT = "kept from this job's last chunk: no start-up"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except OSError:
        return False


def render_four_chunks(project, software, cluster, storage_root, storage_url, settings):
    """The 4-frame demo scene in chunks of one frame, on a worker with one slot."""
    build_demo_scene(storage_root / "scenes" / "ball" / "ball.blend", frames=4)
    with render_worker_for(cluster, settings, concurrency=1):
        job = submit(
            project, software, cluster, storage_url + "scenes/ball/ball.blend",
            frames="1-4", chunk_size=1,
        )  # fmt: skip
        return wait_for(job, timeout=180)


def renderer_pids(job) -> list[int]:
    """The renderer's pid each chunk's agent log says it rendered with, by chunk."""
    backend, _ = storage.resolve(job.output_url)
    pids = []
    for task in job.tasks.order_by("index"):
        _, logs = storage.resolve(task.log_url)
        agent_log = backend.read(logs + "agent.log").decode()
        pids.append(int(re.search(r" started pid=(\d+) ", agent_log)[1]))
    return pids


def frame_pixels(job) -> list[bytes]:
    pixels = []
    for frame in job.frame_set.order_by("number"):
        backend, key = storage.resolve(frame.output_url)
        with Image.open(backend.local_path(key)) as image:
            assert image.size == (64, 48)
            pixels.append(image.convert("RGB").tobytes())
    return pixels


def test_a_slot_renders_a_jobs_chunks_with_one_blender(
    project, blender_software, cluster, storage_root, storage_url, settings
) -> None:
    settings.RENDER_WARM_SECONDS = 30
    job = render_four_chunks(
        project, blender_software, cluster, storage_root, storage_url, settings
    )

    assert job.state == JobState.FINISHED, job.failure_reason
    assert job.frames_done == 4
    assert len(set(frame_pixels(job))) == 4, "each chunk rendered its own frame"
    tasks = list(job.tasks.order_by("index"))
    pids = renderer_pids(job)
    assert len(set(pids)) == 1, f"one Blender for the four chunks: {pids}"
    assert KEPT not in tasks[0].agent_log_tail
    assert all(KEPT in t.agent_log_tail for t in tasks[1:]), [t.agent_log_tail for t in tasks]
    # Each chunk's own logs: its frame's lines, not its neighbours'.
    backend, _ = storage.resolve(job.output_url)
    _, logs = storage.resolve(tasks[2].log_url)
    stdout = backend.read(logs + "stdout.log").decode()
    assert "Saved: '" in stdout and "_0003.png'" in stdout and "_0002.png'" not in stdout
    # The job has nothing left: its session was closed, not kept for RENDER_WARM_SECONDS.
    deadline = time.monotonic() + 15
    while alive(pids[0]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(pids[0])


def test_with_warm_seconds_0_every_chunk_starts_its_own_blender(
    project, blender_software, cluster, storage_root, storage_url, settings
) -> None:
    settings.RENDER_WARM_SECONDS = 0
    job = render_four_chunks(
        project, blender_software, cluster, storage_root, storage_url, settings
    )

    assert job.state == JobState.FINISHED, job.failure_reason
    assert len(set(frame_pixels(job))) == 4
    tasks = list(job.tasks.all())
    assert len(set(renderer_pids(job))) == 4
    assert not any(KEPT in t.agent_log_tail for t in tasks)
