"""Render jobs end to end through a real Celery worker, the node agent and a renderer."""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from jobs import services
from jobs.choices import FrameState, JobState, TaskState
from renderhub import storage
from tests.conftest import build_demo_scene
from tests.jobs.conftest import submit_one as submit
from tests.workers import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.embedded]


def test_it_renders_every_frame_with_outputs_thumbnails_and_logs(
    project, fake_software, cluster, scene_url, render_worker
) -> None:
    job = wait_for(submit(project, fake_software, cluster, scene_url, frames="1-6", nodes=2))
    assert job.state == JobState.FINISHED, job.failure_reason
    assert job.frames_done == 6 and job.frames_failed == 0
    frames = list(job.frame_set.order_by("number"))
    assert all(f.state == FrameState.DONE for f in frames)
    backend, _ = storage.resolve(job.output_url)
    for frame in frames:
        _, key = storage.resolve(frame.output_url)
        assert key.endswith(f"shot_a_{frame.number:04d}.png")
        assert backend.stat(key).size > 0
        _, thumb_key = storage.resolve(frame.thumbnail_url)
        assert backend.read(thumb_key)[:3] == b"\xff\xd8\xff"  # a JPEG
    tasks = list(job.tasks.all())
    assert {t.state for t in tasks} == {TaskState.DONE}
    assert {t.node for t in tasks} == {f"test-{cluster.name}@localhost"}, [t.node for t in tasks]
    _, log_key = storage.resolve(tasks[0].log_url)
    assert b"Saved:" in backend.read(log_key + "stdout.log")
    assert b"frame_done" in backend.read(log_key + "agent.log") or backend.read(
        log_key + "agent.log"
    )
    assert job.duration is not None


def test_a_failing_render_reports_the_renderers_stderr(
    project, fake_software, cluster, scene_url, render_worker, settings
) -> None:
    settings.RENDER_TASK_MAX_ATTEMPTS = 2
    job = submit(
        project,
        fake_software,
        cluster,
        scene_url,
        frames="1-2",
        nodes=1,
        parameters={"mode": "fail"},
    )
    job = wait_for(job)
    assert job.state == JobState.FAILED
    assert "License server unreachable" in job.failure_reason
    task = job.tasks.get()
    assert task.attempts == 2  # retried once, then given up
    assert "License server unreachable" in task.stderr_tail
    assert job.frame_set.filter(state=FrameState.FAILED).count() == 2
    assert job.frames_failed == 2


def test_cancel_kills_the_renderer(
    project, fake_software, cluster, scene_url, render_worker
) -> None:
    job = submit(
        project,
        fake_software,
        cluster,
        scene_url,
        frames="1-2",
        nodes=1,
        parameters={"mode": "slow"},
    )
    deadline = time.monotonic() + 30
    task = job.tasks.get()
    while time.monotonic() < deadline:
        task.refresh_from_db()
        if task.pid and job.frame_set.filter(state=FrameState.RUNNING).exists():
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the render never started")
    pid = task.pid
    assert services.cancel_job(job).count == 1
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.2)
    assert not _alive(pid), "the agent's process group survived the cancel"
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED
    assert job.tasks.get().state == TaskState.CANCELLED
    assert not job.frame_set.exclude(state=FrameState.CANCELLED).exists()


def test_a_test_frame_runs_first_then_the_rest(
    project, fake_software, cluster, scene_url, render_worker
) -> None:
    job = submit(
        project, fake_software, cluster, scene_url, frames="1-5", nodes=2, test_frame_first=True
    )
    job = wait_for(job)
    assert job.state == JobState.FINISHED
    test_task = job.tasks.get(is_test=True)
    others = job.tasks.filter(is_test=False)
    assert all(t.started_at >= test_task.finished_at for t in others)


def test_retry_renders_only_what_failed(
    project, fake_software, cluster, scene_url, render_worker, settings
) -> None:
    settings.RENDER_TASK_MAX_ATTEMPTS = 1
    job = wait_for(
        submit(
            project,
            fake_software,
            cluster,
            scene_url,
            frames="1-2",
            nodes=1,
            parameters={"mode": "fail"},
        )
    )
    assert job.state == JobState.FAILED
    job.parameters = {"mode": "ok"}  # as if the license server came back
    job.save(update_fields=["parameters"])
    assert services.retry_job(job) == 1
    job = wait_for(job, states=(JobState.FINISHED, JobState.FAILED))
    assert job.state == JobState.FINISHED
    assert job.frames_done == 2 and job.frames_failed == 0


def test_the_worker_reports_itself_as_a_cluster_node(cluster, render_worker) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not cluster.nodes.exists():
        time.sleep(0.2)
    node = cluster.nodes.get()
    assert node.name == f"test-{cluster.name}@localhost"
    assert node.cpu_percent is not None and node.memory_percent is not None
    assert node.concurrency == 2


@pytest.mark.blender
@pytest.mark.skipif(shutil.which("blender") is None, reason="needs Blender")
def test_blender_renders_the_demo_scene(
    project, blender_software, cluster, storage_root, storage_url, render_worker, tmp_path
) -> None:
    build_demo_scene(storage_root / "scenes" / "ball" / "ball.blend", frames=4)
    job = wait_for(
        submit(
            project,
            blender_software,
            cluster,
            storage_url + "scenes/ball/ball.blend",
            frames="1-4",
            nodes=2,
        ),
        timeout=180,
    )
    assert job.state == JobState.FINISHED, job.failure_reason
    pixels = []
    frames = list(job.frame_set.order_by("number"))
    for frame in frames:
        path = storage.resolve(frame.output_url)[0].local_path(storage.resolve(frame.output_url)[1])
        with Image.open(path) as img:
            assert img.size == (64, 48)
            pixels.append(img.convert("RGB").tobytes())
    assert len(set(pixels)) == 4  # the animation moves: every frame differs
    # Each frame's seconds are the time Blender printed for it, however busy the machine
    # (the agent's own clock once said 0.0 s for a frame it read late).
    backend, _ = storage.resolve(job.output_url)
    printed: dict[int, float] = {}
    for task in job.tasks.all():
        _, logs = storage.resolve(task.log_url)
        printed |= blender_frame_times(backend.read(logs + "stdout.log").decode())
    assert sorted(printed) == [1, 2, 3, 4]
    assert {f.number: f.seconds for f in frames} == printed
    # Blender prints hundredths: a 64x48 frame on every core may print 00:00.00.
    assert sum(printed.values()) > 0, printed


def blender_frame_times(stdout: str) -> dict[int, float]:
    """Frame number -> the `` Time: MM:SS.hh`` Blender printed right after saving it."""
    found = re.finditer(r"^Saved: '[^']*_(\d+)\.png'\n\s+Time: (\d+):(\d+\.\d+)", stdout, re.M)
    return {int(m[1]): round(int(m[2]) * 60 + float(m[3]), 3) for m in found}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except OSError:
        return False


def test_state_changes_and_failed_frames_are_announced_after_commit(
    project, fake_software, cluster, scene_url, render_worker, settings
) -> None:
    from jobs.signals import frame_failed, job_state_changed

    settings.RENDER_TASK_MAX_ATTEMPTS = 1
    states: list[tuple[str, str]] = []
    failed: list[int] = []

    def on_state(job_id: int, old_state: str, new_state: str, **kw: Any) -> None:
        states.append((old_state, new_state))

    def on_frame(job_id: int, frame_number: int, reason: str, **kw: Any) -> None:
        failed.append(frame_number)

    job_state_changed.connect(on_state, weak=False)
    frame_failed.connect(on_frame, weak=False)
    try:
        job = submit(
            project, fake_software, cluster, scene_url, frames="3-4", nodes=1,
            parameters={"mode": "fail"},
        )  # fmt: skip
        wait_for(job)
        # The worker announces right after its commit: give its thread that moment.
        deadline = time.monotonic() + 10
        while len(states) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        services.cancel_job(job)  # already ended: announces nothing more
    finally:
        job_state_changed.disconnect(on_state)
        frame_failed.disconnect(on_frame)
    assert states == [("queued", "running"), ("running", "failed")]
    assert sorted(failed) == [3, 4]


def test_a_failure_the_only_node_reproduces_is_the_jobs_not_the_nodes(
    project, fake_software, cluster, scene_url, render_worker, settings
) -> None:
    """One node, a scene that always fails: the node is not blocklisted out of the job; it
    tries the chunk its attempts, and the job fails with the renderer's own error."""
    settings.RENDER_BLOCKLIST_AFTER = 1
    settings.RENDER_TASK_MAX_ATTEMPTS = 3
    job = submit(
        project, fake_software, cluster, scene_url, frames="1-2", nodes=1,
        parameters={"mode": "fail"},
    )  # fmt: skip
    job = wait_for(job)
    assert job.state == JobState.FAILED
    reason = job.failure_reason
    assert reason.startswith("1 of 1 chunks failed; first: renderer exited with code 3")
    assert "License server unreachable" in reason
    assert "Every online node" not in reason
    task = job.tasks.get()
    assert task.attempts == 3
    block = job.node_blocks.get()  # still counted, for the admin's eyes
    assert block.node == f"test-{cluster.name}@localhost" and block.failures == 3
    assert "License server unreachable" in block.last_reason


def test_finished_outputs_are_downloaded_when_the_project_asks(
    project, fake_software, cluster, scene_url, render_worker, settings
) -> None:

    project.auto_download = True
    project.save()
    job = wait_for(submit(project, fake_software, cluster, scene_url, frames="1-3", nodes=1))
    assert job.state == JobState.FINISHED
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not job.downloaded_to:
        time.sleep(0.2)
        job.refresh_from_db()
    target = Path(job.downloaded_to)
    assert target.is_relative_to(settings.AUTO_DOWNLOAD_DIR / project.name)
    assert sorted(p.name for p in target.iterdir()) == [
        "shot_a_0001.png",
        "shot_a_0002.png",
        "shot_a_0003.png",
    ]  # the outputs only: no logs or thumbnails


def test_cpu_use_of_a_busy_renderer_is_measured_between_heartbeats() -> None:
    """The job page showed 0 % for every chunk: a new psutil object's first reading is 0."""
    import subprocess
    import sys

    from jobs.runner import CpuMeter

    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        meter = CpuMeter()
        meter.percent(busy.pid)  # the first reading only starts the measurement
        time.sleep(0.5)
        assert (meter.percent(busy.pid) or 0) > 20
    finally:
        busy.kill()
        busy.wait()
    assert meter.percent(busy.pid) is None  # gone: no reading, no error
