"""A worker SIGKILLed in the middle of an adaptive job (``chunk_seconds``): its chunk is
reaped and retried with its frames as they were, the rest of the work queue is re-cut
around it, and every frame ends done exactly once, none rendered twice."""

from __future__ import annotations

import contextlib

import pytest
from django.db import OperationalError

from jobs import services
from jobs.choices import FrameState, JobState, TaskState
from jobs.models import RenderJob, Task
from tests.workers import job_story, wait_for

from .conftest import process_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.embedded]


def test_a_killed_worker_loses_no_frame_of_an_adaptive_job(
    project, fake_software, cluster, scene_url, processes, settings
) -> None:
    settings.RENDER_HEARTBEAT_SECONDS = 1
    settings.RENDER_STALE_AFTER = 4
    # A message the killed worker had prefetched is lost with it; beat's dispatch_pending
    # sends it again once it is this old and a node idles.
    settings.RENDER_REDISPATCH_AFTER = 5
    # An earlier job of the scene measured 1 s a frame: chunks of 3 frames for 3 s.
    [earlier] = services.submit_render(
        services.RenderRequest(
            project=project, software=fake_software, cluster=cluster, scenes=[scene_url],
            frames="1-4", nodes=1,
        )
    )  # fmt: skip
    earlier.tasks.update(state=TaskState.DONE)
    earlier.frame_set.update(state=FrameState.DONE, seconds=1.0)
    RenderJob.objects.filter(pk=earlier.pk).update(
        state=JobState.FINISHED, frames_done=4, render_seconds=4.0
    )
    env = process_env(settings)
    processes.worker("a", [cluster.queue], env)
    wait_for(lambda: cluster.nodes.filter(name="a@test").exists(), timeout=60, what="a reports")

    [job] = services.submit_render(
        services.RenderRequest(
            project=project, software=fake_software, cluster=cluster, scenes=[scene_url],
            frames="1-8", chunk_seconds=3, parameters={"mode": "steady"},
        )
    )  # fmt: skip
    wait_for(
        lambda: job.frame_set.filter(state=FrameState.DONE).count() >= 2,
        timeout=60,
        what="two frames done",
    )
    [cut] = Task.objects.filter(job=job, state=TaskState.RUNNING)
    cut_frames = list(cut.frames)
    done_before = dict(
        job.frame_set.filter(state=FrameState.DONE).values_list("number", "finished_at")
    )
    processes.power_cut("a")
    processes.worker("b", [cluster.queue], env)

    def finished() -> bool:
        # What beat runs. On the embedded SQLite a round can find the database locked by the
        # workers' writes; beat's task then fails that round and runs again, as here.
        with contextlib.suppress(OperationalError):
            services.reap_stale_tasks()
            services.dispatch_pending()
        job.refresh_from_db()
        return not job.is_active

    def story() -> str:  # what a timeout says: the chunks, the nodes, both workers' logs
        processes.dump_stacks()
        logs = [processes.log_dir / f"{name}.log" for name in ("a", "b")]
        tails = [f"--- {log.name}\n{log.read_text()[-8000:]}" for log in logs]
        return "\n".join([job_story(job), *tails])

    wait_for(finished, timeout=120, what="the job ends", every=0.5, explain=story)
    assert job.state == JobState.FINISHED, job.failure_reason
    frames = list(job.frame_set.order_by("number"))
    assert [f.state for f in frames] == [FrameState.DONE] * 8
    assert job.frames_done == 8 and job.frames_failed == 0  # none lost, none counted twice
    for frame in frames:  # frames finished before the cut were not rendered again
        if frame.number in done_before:
            assert frame.finished_at == done_before[frame.number]
    listed = sorted(n for t in job.tasks.all() for n in t.frames)
    assert listed == list(range(1, 9))  # each frame in exactly one chunk
    cut.refresh_from_db()
    assert cut.frames == cut_frames and cut.attempts == 2 and cut.node == "b@test"
