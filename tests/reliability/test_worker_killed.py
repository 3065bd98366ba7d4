"""A render worker SIGKILLed mid-chunk (a power cut): its chunk is requeued within
RENDER_STALE_AFTER plus one reaper cycle, finished by another worker, and no frame is
lost or counted twice.
"""

from __future__ import annotations

import contextlib
import time

import psutil
import pytest
from django.db import OperationalError

from jobs import services
from jobs.choices import FrameState, JobState, TaskState
from jobs.models import Task
from renderhub import storage
from tests.workers import wait_for

from .conftest import process_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.embedded]


def alive(pid: int | None) -> bool:
    if not pid or not psutil.pid_exists(pid):
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_killed_workers_chunk_is_finished_elsewhere_and_no_frame_is_lost(
    project, fake_software, cluster, scene_url, processes, settings
) -> None:
    settings.RENDER_HEARTBEAT_SECONDS = 1
    settings.RENDER_STALE_AFTER = 4
    env = process_env(settings)
    processes.worker("a", [cluster.queue], env)
    wait_for(
        lambda: cluster.nodes.filter(name="a@test").exists(), timeout=60, what="worker a reports in"
    )

    [job] = services.submit_render(
        services.RenderRequest(
            project=project, software=fake_software, cluster=cluster, scenes=[scene_url],
            frames="1-6", nodes=1, parameters={"mode": "steady"},
        )
    )  # fmt: skip
    task = job.tasks.get()
    wait_for(
        lambda: job.frame_set.filter(state=FrameState.DONE).count() >= 2,
        timeout=60,
        what="two frames done",
    )
    task.refresh_from_db()
    agent_pid = task.pid
    done_before = dict(
        job.frame_set.filter(state=FrameState.DONE).values_list("number", "finished_at")
    )

    processes.power_cut("a")
    killed = time.monotonic()
    wait_for(lambda: not alive(agent_pid), timeout=15, what="the orphaned agent and renderer exit")
    processes.worker("b", [cluster.queue], env)

    def requeued() -> bool:
        # What beat runs every RENDER_STALE_AFTER / 2 seconds; a round that finds the
        # embedded SQLite locked by the workers fails, and the next one runs, as in beat.
        with contextlib.suppress(OperationalError):
            services.reap_stale_tasks()
        return (
            Task.objects.get(pk=task.pk).attempts >= 2
            or Task.objects.get(pk=task.pk).state == TaskState.QUEUED
        )

    wait_for(requeued, timeout=30, what="the lost chunk is requeued", every=1.0)
    requeue_seconds = time.monotonic() - killed

    def finished() -> bool:
        with contextlib.suppress(OperationalError):
            services.reap_stale_tasks()
        job.refresh_from_db()
        return not job.is_active

    wait_for(finished, timeout=90, what="the job ends", every=0.5)
    assert job.state == JobState.FINISHED, job.failure_reason
    assert requeue_seconds <= settings.RENDER_STALE_AFTER + 3
    frames = list(job.frame_set.order_by("number"))
    assert [f.state for f in frames] == [FrameState.DONE] * 6
    assert job.frames_done == 6 and job.frames_failed == 0  # nothing lost, nothing twice
    for frame in frames:  # frames finished before the cut were not rendered again
        if frame.number in done_before:
            assert frame.finished_at == done_before[frame.number]
        backend, key = storage.resolve(frame.output_url)
        assert backend.stat(key).size > 0
    task.refresh_from_db()
    assert task.attempts == 2 and task.node == "b@test"
    assert "Lost contact with a@test" not in job.failure_reason
    print(f"requeued {requeue_seconds:.1f} s after the power cut")  # for docs/RELIABILITY.md
