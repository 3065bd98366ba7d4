"""Adaptive chunks (``chunk_seconds``, jobs.chunking): chunks sized from the measured
seconds per frame, the unstarted frames re-cut as frames finish, every frame in exactly one
chunk throughout; the default distribution on own machines; the refusals at submit."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from clusters.choices import Backend
from jobs import chunking, runner, services
from jobs.choices import FrameState, JobState, TaskState
from jobs.models import Frame, RenderJob, Task
from tests.workers import wait_for

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.embedded,
    pytest.mark.usefixtures("adaptive_settings"),
]


def submit(project: Any, software: Any, cluster: Any, scene: str, **kw: Any) -> RenderJob:
    request = services.RenderRequest(
        project=project, software=software, cluster=cluster, scenes=[scene], **kw
    )
    return services.submit_render(request)[0]


def earlier_job(project: Any, software: Any, cluster: Any, scene: str, spf: float) -> None:
    """A finished job of the same scene and software that rendered at ``spf`` s a frame."""
    job = submit(project, software, cluster, scene, frames="1-10", nodes=1)
    job.tasks.update(state=TaskState.DONE)
    job.frame_set.update(state=FrameState.DONE, seconds=spf)
    RenderJob.objects.filter(pk=job.pk).update(
        state=JobState.FINISHED, frames_done=10, render_seconds=10 * spf
    )


def sizes(job: RenderJob, **filters: Any) -> list[int]:
    return [len(t.frames) for t in job.tasks.filter(**filters).order_by("index")]


def assert_each_frame_once(job: RenderJob, frames: list[int]) -> None:
    """Every frame in exactly one chunk, and each Frame row in the chunk that lists it."""
    listed = [n for t in job.tasks.all() for n in t.frames]
    assert sorted(listed) == frames
    for task in job.tasks.all():
        assert sorted(task.frame_set.values_list("number", flat=True)) == sorted(task.frames)


def finish(task: Task, seconds: float) -> None:
    for number in task.frames:
        services.frame_done(task, number, seconds=seconds, output_url="", thumbnail_url="")
    services.task_finished(task, ok=True, reason="", exit_code=0, retryable=False)


def test_chunk_sizes_follow_the_measured_seconds_per_frame(
    project, fake_software, cluster, scene_url
) -> None:
    earlier_job(project, fake_software, cluster, scene_url, spf=2.0)
    job = submit(project, fake_software, cluster, scene_url, frames="1-40", chunk_seconds=10)
    assert job.chunk_seconds == 10
    planned = sizes(job)
    assert planned[0] == 5  # 10 s of work at 2 s a frame
    # Guided by what is left over the cluster's two nodes: the last chunks are smaller.
    assert planned[-1] < planned[0] and planned == sorted(planned, reverse=True)
    assert_each_frame_once(job, list(range(1, 41)))

    RenderJob.objects.filter(project=project).update(render_seconds=0.5 * 10)  # 0.5 s a frame
    Frame.objects.filter(job__project=project, state=FrameState.DONE).update(seconds=0.5)
    faster = submit(project, fake_software, cluster, scene_url, frames="1-40", chunk_seconds=10)
    # 0.5 s a frame, 20 s over two nodes: 10 s each; frames 11-40 have no history yet, so
    # half a node's share is held back for surprises.
    assert sizes(faster)[0] == 10


def test_short_frames_are_not_cut_below_four_start_ups_of_work(
    project, fake_software, cluster, scene_url
) -> None:
    """24 frames of 0.3 s on two slots: two chunks of 12, not a queue of one-frame chunks
    each paying the renderer's start-up."""
    earlier_job(project, fake_software, cluster, scene_url, spf=0.3)
    job = submit(project, fake_software, cluster, scene_url, frames="1-24")
    assert job.chunk_seconds == 60  # the default distribution on own machines
    assert sizes(job) == [12, 12]


def test_no_chunk_is_left_with_less_work_than_a_start_up(
    project, fake_software, cluster, scene_url
) -> None:
    earlier_job(project, fake_software, cluster, scene_url, spf=0.5)
    job = submit(project, fake_software, cluster, scene_url, frames="1-19", chunk_seconds=10)
    # 10 for one node, 8 (four start-ups) for the other, and the last frame's 0.5 s, less
    # than a start-up, goes with them rather than alone.
    assert sizes(job) == [10, 9]


def test_the_unstarted_frames_are_re_cut_as_frames_finish(
    project, fake_software, cluster, scene_url
) -> None:
    earlier_job(project, fake_software, cluster, scene_url, spf=1.0)
    job = submit(project, fake_software, cluster, scene_url, frames="1-60", chunk_seconds=10)
    assert sizes(job)[:2] == [10, 10]
    first, _ = runner.claim(job.tasks.get(index=0).pk, "n1")
    assert len(first.frames) == 10
    # Its frames took 0.25 s each, not 1 s: the next chunk taken holds 40 frames' worth
    # of 10 s, bounded by the share of the two nodes of the 50 frames left.
    finish(first, seconds=0.25)
    assert chunking.seconds_per_frame(job, 2) == pytest.approx(0.25)
    following = job.tasks.filter(state=TaskState.QUEUED).order_by("index").first()
    taken, _ = runner.claim(following.pk, "n2")
    assert len(taken.frames) == 25
    assert taken.frames == list(range(11, 36))
    assert_each_frame_once(job, list(range(1, 61)))
    # What is still queued was cut again behind it, shrinking toward the end.
    left = sizes(job, state=TaskState.QUEUED)
    assert sum(left) == 25 and left == sorted(left, reverse=True)


def test_only_the_head_of_a_long_queue_is_cut_again(
    project, fake_software, cluster, scene_url
) -> None:
    """A node always takes the front of the queue: re-cutting a job of many chunks moves
    the frames of the next few only, however long the job."""
    earlier_job(project, fake_software, cluster, scene_url, spf=1.0)
    job = submit(project, fake_software, cluster, scene_url, frames="1-400", chunk_seconds=10)
    first, _ = runner.claim(job.tasks.get(index=0).pk, "n1")
    finish(first, seconds=0.5)
    taken, _ = runner.claim(job.tasks.get(index=1).pk, "n1")
    assert taken.frames == list(range(11, 31))  # 10 s at 0.5 s a frame
    # Two nodes: the six chunks behind it are cut again at the new speed (into fewer,
    # bigger ones); the rest stay as planned.
    assert job.tasks.get(index=2).frames == list(range(31, 51))
    assert job.tasks.get(index=4).frames == list(range(71, 81))
    assert not job.tasks.filter(index__in=[5, 6, 7]).exists()
    assert job.tasks.get(index=8).frames == list(range(81, 91))
    assert_each_frame_once(job, list(range(1, 401)))


def test_the_test_frame_measures_the_chunks_held_behind_it(
    project, fake_software, cluster, scene_url
) -> None:
    job = submit(
        project, fake_software, cluster, scene_url, frames="1-41", chunk_seconds=8,
        test_frame_first=True,
    )  # fmt: skip
    # Nothing measured yet: one chunk per node behind the test frame.
    assert sizes(job, state=TaskState.HELD) == [20, 20]
    test, _ = runner.claim(job.tasks.get(is_test=True).pk, "n1")
    finish(test, seconds=2.0)
    released = job.tasks.filter(state=TaskState.QUEUED).order_by("index").first()
    taken, _ = runner.claim(released.pk, "n1")
    assert len(taken.frames) == 4  # 8 s at the test frame's 2 s
    assert_each_frame_once(job, list(range(1, 42)))


def test_a_chunk_that_ran_keeps_its_frames_and_attempts(
    project, fake_software, cluster, scene_url
) -> None:
    """A lost node's chunk goes back to the queue as it was: only chunks that never ran are
    re-cut, so finished frames are never moved or rendered again."""
    earlier_job(project, fake_software, cluster, scene_url, spf=1.0)
    job = submit(project, fake_software, cluster, scene_url, frames="1-40", chunk_seconds=10)
    task, _ = runner.claim(job.tasks.get(index=0).pk, "n1")
    services.frame_done(task, 1, seconds=0.1, output_url="", thumbnail_url="")
    services.task_finished(task, ok=False, reason="lost", exit_code=None, retryable=True)
    chunking.recut(job.pk)  # re-cutting the rest never touches it
    task.refresh_from_db()
    assert task.state == TaskState.QUEUED and task.frames == list(range(1, 11))
    again, _ = runner.claim(task.pk, "n2")
    assert again.frames == list(range(1, 11)) and again.attempts == 2
    assert_each_frame_once(job, list(range(1, 41)))


def test_a_paused_or_cancelled_job_is_not_taken_or_re_cut(
    project, fake_software, cluster, scene_url
) -> None:
    earlier_job(project, fake_software, cluster, scene_url, spf=1.0)
    job = submit(project, fake_software, cluster, scene_url, frames="1-40", chunk_seconds=10)
    before = sizes(job)
    services.pause_job(job)
    assert runner.claim(job.tasks.get(index=0).pk, "n1") is None
    assert sizes(job) == before
    services.cancel_job(job)
    assert chunking.recut(job.pk) is False
    assert sizes(job) == before


def test_other_distributions_are_unchanged(project, fake_software, cluster, scene_url) -> None:
    by_nodes = submit(project, fake_software, cluster, scene_url, frames="1-9", nodes=3)
    by_size = submit(project, fake_software, cluster, scene_url, frames="1-9", chunk_size=4)
    assert by_nodes.chunk_seconds is None and sizes(by_nodes) == [3, 3, 3]
    assert by_size.chunk_seconds is None and sizes(by_size) == [4, 4, 1]


def test_no_default_work_queue_when_the_setting_is_zero(
    project, fake_software, cluster, scene_url, settings
) -> None:
    settings.RENDER_CHUNK_SECONDS = 0
    job = submit(project, fake_software, cluster, scene_url, frames="1-9")
    assert job.chunk_seconds is None and sizes(job) == [5, 4]  # one per node, as before


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"chunk_seconds": 0}, "Chunk seconds must be between 1 and 86400 (a day)."),
        ({"chunk_seconds": 30, "nodes": 2}, "Give chunk seconds, nodes or a chunk size, not two"),
        ({"chunk_seconds": 30, "chunk_size": 5}, "Give chunk seconds, nodes or a chunk size"),
    ],
)
def test_chunk_seconds_are_checked_at_submit(
    project, fake_software, cluster, scene_url, extra, message
) -> None:
    with pytest.raises(services.SubmissionError) as refused:
        submit(project, fake_software, cluster, scene_url, frames="1-4", **extra)
    assert refused.value.message_dict["chunk_seconds"][0].startswith(message)


def test_batchcompute_refuses_chunk_seconds_and_keeps_even_chunks(
    project, fake_software, cluster, scene_url
) -> None:
    type(cluster).objects.filter(pk=cluster.pk).update(backend=Backend.BATCHCOMPUTE)
    cluster.refresh_from_db()
    with pytest.raises(services.SubmissionError) as refused:
        submit(project, fake_software, cluster, scene_url, frames="1-4", chunk_seconds=30)
    [message] = refused.value.message_dict["chunk_seconds"]
    assert message.startswith("Chunk seconds work on own machines only: BatchCompute")
    job = submit(project, fake_software, cluster, scene_url, frames="1-4")
    assert job.chunk_seconds is None and sizes(job) == [2, 2]


def test_the_cli_takes_chunk_seconds(project, fake_software, cluster, scene_url, bob) -> None:
    call_command(
        "submit_render", "--scene", scene_url, "--project", project.name,
        "--software", fake_software.name, "--cluster", cluster.name,
        "--frames", "1-8", "--chunk-seconds", "45", "--as-user", bob.username,
    )  # fmt: skip
    assert RenderJob.objects.get(project=project).chunk_seconds == 45
    with pytest.raises(CommandError, match="Give chunk seconds, nodes or a chunk size"):
        call_command(
            "submit_render", "--scene", scene_url, "--project", project.name,
            "--software", fake_software.name, "--cluster", cluster.name,
            "--frames", "1-8", "--chunk-seconds", "45", "--nodes", "2",
            "--as-user", bob.username,
        )  # fmt: skip


def test_the_api_takes_chunk_seconds(project, fake_software, cluster, scene_url, bob) -> None:
    from rest_framework.test import APIClient

    from api.services import create_token

    _token, key = create_token(bob, "tests")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    body = {
        "project": project.name, "software": fake_software.name, "cluster": cluster.name,
        "scenes": [scene_url], "frames": "1-8",
    }  # fmt: skip
    created = client.post("/api/jobs/", {**body, "chunk_seconds": 45}, format="json")
    assert created.status_code == 201, created.content
    [data] = created.json()["jobs"]
    assert client.get(f"/api/jobs/{data['id']}/").json()["chunk_seconds"] == 45
    refused = client.post("/api/jobs/", {**body, "chunk_seconds": 45, "nodes": 2}, format="json")
    assert refused.status_code == 400
    assert refused.json()["chunk_seconds"][0].startswith("Give chunk seconds, nodes or a chunk")


@pytest.mark.django_db(transaction=True)
@pytest.mark.embedded
def test_a_real_worker_re_cuts_the_queue_when_frames_turn_out_faster(
    project, fake_software, cluster, scene_url, render_worker
) -> None:
    """History says 10 s a frame (chunks of 2 for 20 s); the frames take a fraction of a
    second: once the first chunks end, the rest of the job goes in far fewer chunks."""
    earlier_job(project, fake_software, cluster, scene_url, spf=10.0)
    job = submit(project, fake_software, cluster, scene_url, frames="1-16", chunk_seconds=20)
    planned = sizes(job)
    assert planned[0] == 2 and planned[-1] == 1 and len(planned) >= 9  # shrinking at the end
    job = wait_for(job, timeout=120)
    assert job.state == JobState.FINISHED, job.failure_reason
    assert job.frames_done == 16 and job.frames_failed == 0
    assert [f.state for f in job.frame_set.all()] == [FrameState.DONE] * 16
    assert_each_frame_once(job, list(range(1, 17)))
    done = sizes(job)
    assert len(done) < len(planned) and max(done) > 2, done
