"""Pausing and resuming jobs, suspending clusters (jobs.scheduling, clusters.suspension):
the rules through the services, then with a real render worker where order matters."""

from __future__ import annotations

import shutil

import pytest
from django.utils import timezone
from PIL import Image

from clusters import services as cluster_services
from clusters.choices import Backend
from jobs import runner, services
from jobs.choices import FrameState, JobState, TaskState
from jobs.models import AttemptState
from renderhub import storage
from tests.conftest import build_demo_scene
from tests.jobs.conftest import submit_one as submit
from tests.workers import online_node, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.embedded]


# --- the rules ---------------------------------------------------------------------------


def test_a_paused_job_is_neither_sent_nor_claimed_until_resumed(
    project, fake_software, cluster, scene_url
) -> None:
    online_node(cluster)
    job = submit(project, fake_software, cluster, scene_url, frames="1-4", nodes=2)
    outcome = services.pause_job(job)
    assert outcome.ok and "running chunks finish" in outcome.message
    job.refresh_from_db()
    assert job.is_paused and job.state == JobState.QUEUED
    task = job.tasks.first()
    assert runner.claim(task.pk, "node-1") is None  # a message sent before the pause
    assert services.dispatch(job.pk) == 0
    assert services.pause_job(job).message == f"Job #{job.pk} is paused already."

    outcome = services.resume_job(job)
    assert outcome.ok and outcome.count == 2
    job.refresh_from_db()
    assert not job.is_paused
    assert job.tasks.filter(queued_at__isnull=False).count() == 2  # sent again on commit
    assert runner.claim(task.pk, "node-1") is not None
    assert services.resume_job(job).message == f"Job #{job.pk} is not paused."


def test_pause_now_puts_running_chunks_back_and_keeps_finished_frames(
    project, fake_software, cluster, scene_url
) -> None:
    job = submit(project, fake_software, cluster, scene_url, frames="1-4", nodes=1)
    task, attempt = runner.claim(job.tasks.get().pk, "node-1")
    services.frame_done(task, 1, seconds=1.0, output_url="", thumbnail_url="")
    services.frame_started(task, 2)

    outcome = services.pause_job(job, now=True)

    assert outcome.ok and outcome.count == 1, outcome.message
    task.refresh_from_db()
    assert task.state == TaskState.QUEUED and task.node == "" and task.queued_at is None
    assert task.max_attempts == 4  # the cut attempt is not held against the chunk
    states = dict(job.frame_set.values_list("number", "state"))
    assert states == {1: FrameState.DONE, 2: FrameState.QUEUED, 3: "queued", 4: "queued"}
    attempt.refresh_from_db()
    assert attempt.state == AttemptState.REQUEUED and attempt.failure_reason == "paused"
    # The node's heartbeat sees the chunk is not its own any more (and kills the renderer).
    run = runner.ChunkRun(task, "node-1", 1, attempt)
    assert run.heartbeat() is False
    job.refresh_from_db()
    assert job.frames_done == 1 and job.is_paused


def test_pause_now_is_refused_on_batchcompute_and_ended_jobs_are_not_paused(
    project, fake_software, cluster, scene_url
) -> None:
    job = submit(project, fake_software, cluster, scene_url, frames="1-2", nodes=1)
    type(cluster).objects.filter(pk=cluster.pk).update(backend=Backend.BATCHCOMPUTE)
    job.refresh_from_db()
    outcome = services.pause_job(job, now=True)
    assert not outcome.ok and "cannot be put back" in outcome.message
    job.tasks.update(queued_at=timezone.now())  # sent in a cloud job
    outcome = services.pause_job(job)
    assert outcome.ok and "the chunks already sent run on" in outcome.message
    services.cancel_job(job)
    outcome = services.pause_job(job)
    assert not outcome.ok and outcome.message.endswith("is already cancelled; nothing to pause.")


def test_retrying_a_job_that_ended_paused_runs_it(project, fake_software, cluster, scene_url):
    job = submit(project, fake_software, cluster, scene_url, frames="1-2", nodes=1)
    services.pause_job(job)
    services.cancel_job(job)
    assert services.retry_job(job) == 1
    job.refresh_from_db()
    assert job.paused_at is None and job.is_active


def test_a_suspended_clusters_chunks_are_not_sent_or_taken_until_it_resumes(
    project, fake_software, cluster, scene_url
) -> None:
    assert cluster_services.suspend(cluster).ok
    assert not cluster_services.suspend(cluster).ok  # already
    online_node(cluster)
    job = submit(project, fake_software, cluster, scene_url, frames="1-4", nodes=2)
    assert not job.tasks.filter(queued_at__isnull=False).exists()  # nothing sent
    assert runner.claim(job.tasks.first().pk, "node-1") is None
    assert cluster.operations.filter(action="suspend").exists()

    assert cluster_services.resume(cluster).ok
    assert job.tasks.filter(queued_at__isnull=False).count() == 2  # sent on commit
    assert runner.claim(job.tasks.first().pk, "node-1") is not None
    assert not cluster_services.resume(cluster).ok


# --- with a real render worker -----------------------------------------------------------


def test_running_chunks_finish_and_no_new_chunk_starts_until_resumed(
    project, fake_software, cluster, scene_url, render_worker
) -> None:
    # Three chunks of two one-second frames; the worker runs two at a time.
    job = submit(
        project, fake_software, cluster, scene_url, frames="1-6", chunk_size=2,
        parameters={"mode": "steady"},
    )  # fmt: skip
    wait_for(
        lambda: job.tasks.filter(state=TaskState.RUNNING).count() == 2,
        timeout=60,
        what="two chunks running",
    )
    services.pause_job(job)
    wait_for(
        lambda: job.tasks.filter(state=TaskState.DONE).count() == 2,
        timeout=60,
        what="the running chunks to finish",
    )
    # Another job on the cluster renders while this one waits: the worker is free.
    other = wait_for(submit(project, fake_software, cluster, scene_url, frames="1-2", nodes=1))
    assert other.state == JobState.FINISHED
    job.refresh_from_db()
    assert job.state == JobState.RUNNING and job.is_paused
    assert job.frames_done == 4
    assert job.tasks.get(index=2).state == TaskState.QUEUED
    assert job.tasks.get(index=2).attempts == 0  # never started

    services.resume_job(job)
    job = wait_for(job)
    assert job.state == JobState.FINISHED and job.frames_done == 6


def test_pause_now_stops_the_renderer_and_resume_renders_only_the_rest(
    project, fake_software, cluster, scene_url, render_worker
) -> None:
    job = submit(
        project, fake_software, cluster, scene_url, frames="1-6", nodes=1,
        parameters={"mode": "steady"},
    )  # fmt: skip
    wait_for(
        lambda: job.frame_set.filter(state=FrameState.DONE).count() >= 2,
        timeout=60,
        what="two frames done",
    )
    services.pause_job(job, now=True)
    task = job.tasks.get()
    first = task.history.get(number=1)
    wait_for(
        # The worker's run ends when its heartbeat sees the pause: it publishes the logs.
        lambda: task.history.filter(number=1).exclude(log_url="").exists(),
        timeout=30,
        what="the cut attempt to end on its node",
    )
    done_before = dict(
        job.frame_set.filter(state=FrameState.DONE).values_list("number", "finished_at")
    )
    assert first.state == AttemptState.REQUEUED and len(done_before) >= 2
    job.refresh_from_db()
    assert job.state == JobState.RUNNING and job.frames_done == len(done_before)

    services.resume_job(job)
    job = wait_for(job)
    assert job.state == JobState.FINISHED and job.frames_done == 6
    again = dict(job.frame_set.values_list("number", "finished_at"))
    for number, finished in done_before.items():
        assert again[number] == finished  # kept, not rendered again
    assert list(task.history.values_list("number", "state", "failure_reason")) == [
        (1, AttemptState.REQUEUED, "paused"),
        (2, AttemptState.DONE, ""),
    ]


@pytest.mark.blender
@pytest.mark.skipif(shutil.which("blender") is None, reason="needs Blender")
def test_a_paused_blender_job_waits_while_a_later_job_renders_then_resumes(
    project, blender_software, cluster, storage_root, storage_url, render_worker
) -> None:
    build_demo_scene(storage_root / "scenes" / "ball" / "ball.blend", frames=3)
    scene = storage_url + "scenes/ball/ball.blend"
    first = submit(project, blender_software, cluster, scene, frames="1-3", nodes=1)
    services.pause_job(first)
    second = wait_for(
        submit(project, blender_software, cluster, scene, frames="1-2", nodes=1), timeout=180
    )
    assert second.state == JobState.FINISHED, second.failure_reason
    first.refresh_from_db()
    assert first.state == JobState.QUEUED and first.started_at is None  # its message skipped

    services.resume_job(first)
    first = wait_for(first, timeout=180)
    assert first.state == JobState.FINISHED, first.failure_reason
    assert first.started_at > second.finished_at
    for frame in first.frame_set.all():
        backend, key = storage.resolve(frame.output_url)
        with Image.open(backend.local_path(key)) as img:
            assert img.size == (64, 48)
