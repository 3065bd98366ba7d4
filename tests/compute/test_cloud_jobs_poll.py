"""Polling render jobs on BatchCompute, instance by instance: the fake is driven by the test."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone

from jobs import services
from jobs.backends.batchcompute import poll as cloud_poll
from jobs.choices import FrameState, JobState, TaskState
from jobs.models import CloudJobState, RenderJob, Task
from tests.compute.fixtures import (
    FINISHED_OK,
    cloud_job_of,
    render_events,
    submit_cloud,
    write_events,
)
from tests.fakes.batchcompute import FakeBatchCompute
from tests.fakes.oss import FakeOSS

pytestmark = pytest.mark.django_db


# --- polling ------------------------------------------------------------------------------


def test_running_instances_make_running_chunks_and_stored_files_make_done_frames(
    submitted: RenderJob, fake_bc: FakeBatchCompute, cloud_oss: FakeOSS
) -> None:
    cj = cloud_job_of(submitted)
    fake_bc.start_instances(cj.cloud_id, indices=[0, 1])
    cloud_poll.poll_all()
    states = dict(submitted.tasks.values_list("index", "state"))
    assert states == {0: TaskState.RUNNING, 1: TaskState.RUNNING, 2: TaskState.QUEUED}
    task0 = submitted.tasks.get(index=0)
    assert task0.node.startswith("192.168.1.") and task0.attempts == 1
    assert task0.log_url == f"{submitted.output_url}_logs/task-0/"
    submitted.refresh_from_db()
    assert submitted.state == JobState.RUNNING

    write_events(cloud_oss, cj, 0, [*render_events([1]), {"event": "frame_started", "frame": 2}])
    cloud_poll.poll_all()
    # Rendered on the node is not done: the file reaches storage when the instance ends.
    frames = dict(submitted.frame_set.values_list("number", "state"))
    assert frames[1] == frames[2] == FrameState.RUNNING
    submitted.refresh_from_db()
    assert submitted.frames_done == 0
    write_events(cloud_oss, cj, 0, [*render_events([2])[1:], FINISHED_OK])
    fake_bc.finish_instance(cj.cloud_id, 0)
    cloud_poll.poll_all()
    frame = submitted.frame_set.get(number=1)
    assert frame.state == FrameState.DONE
    assert frame.output_url == f"{submitted.output_url}shot_a_0001.png"
    assert frame.seconds == 1.5
    submitted.refresh_from_db()
    assert submitted.frames_done == 2
    cloud_poll.poll_all()  # nothing counted twice
    submitted.refresh_from_db()
    assert submitted.frames_done == 2


def test_finished_instances_finish_the_job(
    submitted: RenderJob, fake_bc: FakeBatchCompute, cloud_oss: FakeOSS, bucket: str
) -> None:
    cj = cloud_job_of(submitted)
    fake_bc.start_instances(cj.cloud_id)
    cloud_poll.poll_all()
    for i, frames in enumerate(([1, 2], [3, 4], [5, 6])):
        write_events(cloud_oss, cj, i, [*render_events(frames), FINISHED_OK])
        fake_bc.finish_instance(cj.cloud_id, i)
        prefix = submitted.output_url.removeprefix(f"oss://{bucket}/")
        cloud_oss.put(bucket, f"{prefix}_logs/task-{i}/agent.log", b"agent says hi\n")
    report = cloud_poll.poll_all()
    submitted.refresh_from_db()
    assert submitted.state == JobState.FINISHED
    assert submitted.frames_done == 6
    assert set(submitted.tasks.values_list("state", flat=True)) == {TaskState.DONE}
    assert submitted.tasks.get(index=1).agent_log_tail == "agent says hi\n"
    cj.refresh_from_db()
    assert cj.state == CloudJobState.ENDED and cj.cloud_state == "Finished"
    assert report.to_finish == [cj.pk]


def test_a_failed_instance_fails_its_chunk_with_the_agents_reason(
    submitted: RenderJob, fake_bc: FakeBatchCompute, cloud_oss: FakeOSS
) -> None:
    cj = cloud_job_of(submitted)
    fake_bc.start_instances(cj.cloud_id)
    write_events(
        cloud_oss,
        cj,
        1,
        [
            {"event": "frame_failed", "frame": 3, "reason": "renderer exited with code 3"},
            {
                "event": "finished",
                "status": "renderer_failed",
                "exit_code": 4,
                "reason": "renderer exited with code 3: Error: License server unreachable",
            },
        ],
    )
    for _ in range(3):  # MaxRetryCount 2: three attempts, then Failed
        fake_bc.finish_instance(cj.cloud_id, 1, exit_code=4)
    for i, frames in ((0, [1, 2]), (2, [5, 6])):
        write_events(cloud_oss, cj, i, [*render_events(frames), FINISHED_OK])
        fake_bc.finish_instance(cj.cloud_id, i)
    cloud_poll.poll_all()
    task = submitted.tasks.get(index=1)
    assert task.state == TaskState.FAILED
    assert task.exit_code == 4
    assert task.attempts == 3
    assert "License server unreachable" in task.failure_reason
    assert "after 3 attempts" in task.failure_reason
    submitted.refresh_from_db()
    assert submitted.state == JobState.FAILED
    assert submitted.frames_failed == 2
    assert submitted.frames_done == 4


def test_an_instance_that_exits_0_without_frame_events_fails_its_frames(
    submitted: RenderJob, fake_bc: FakeBatchCompute, cloud_oss: FakeOSS
) -> None:
    """Exit code 0 is not a frame: the agent's frame_done (it found the file) is."""
    cj = cloud_job_of(submitted)
    fake_bc.start_instances(cj.cloud_id)
    write_events(cloud_oss, cj, 0, [*render_events([1]), FINISHED_OK])  # frame 2 never saved
    for i in range(3):
        fake_bc.finish_instance(cj.cloud_id, i)
    cloud_poll.poll_all()
    submitted.refresh_from_db()
    assert submitted.state == JobState.FAILED
    assert submitted.frames_done == 1
    task = submitted.tasks.get(index=0)
    assert task.state == TaskState.FAILED
    assert "ended without reporting frame(s) 2: no output file was found" in task.failure_reason
    silent = submitted.tasks.get(index=2)
    assert "ended without reporting frame(s) 5, 6" in silent.failure_reason
    unsaved = submitted.frame_set.filter(number__in=[2, 5, 6])
    assert set(unsaved.values_list("state", flat=True)) == {"failed"}


def test_an_instance_failing_then_succeeding_on_retry_counts_two_attempts(
    submitted: RenderJob, fake_bc: FakeBatchCompute, cloud_oss: FakeOSS
) -> None:
    cj = cloud_job_of(submitted)
    fake_bc.start_instances(cj.cloud_id)
    assert fake_bc.finish_instance(cj.cloud_id, 0, exit_code=137) == "Waiting"
    cloud_poll.poll_all()
    fake_bc.start_instances(cj.cloud_id, indices=[0])
    cloud_poll.poll_all()
    assert submitted.tasks.get(index=0).attempts == 2
    write_events(cloud_oss, cj, 0, [*render_events([1, 2]), FINISHED_OK], run=2)
    fake_bc.finish_instance(cj.cloud_id, 0)
    cloud_poll.poll_all()
    task = submitted.tasks.get(index=0)
    assert task.state == TaskState.DONE and task.attempts == 2


def test_an_instance_failing_without_events_reports_the_node_error(
    submitted: RenderJob, fake_bc: FakeBatchCompute, cloud_oss: FakeOSS, bucket: str
) -> None:
    cj = cloud_job_of(submitted)
    cloud_oss.put(
        bucket,
        cj.log_url.removeprefix(f"oss://{bucket}/") + f"stderr.{cj.cloud_id}.render.2",
        b"python3: can't open file 'renderhub_node.py'\n",
    )
    fake_bc.start_instances(cj.cloud_id)
    for _ in range(3):
        fake_bc.finish_instance(cj.cloud_id, 2, exit_code=2)
    cloud_poll.poll_all()
    reason = submitted.tasks.get(index=2).failure_reason
    assert "the node command exited with 2" in reason
    assert "can't open file 'renderhub_node.py'" in reason


def test_a_failed_job_fails_its_open_chunks_with_its_message(
    submitted: RenderJob, fake_bc: FakeBatchCompute, cloud_oss: FakeOSS
) -> None:
    cj = cloud_job_of(submitted)
    fake_bc.start_instances(cj.cloud_id, indices=[0])
    write_events(cloud_oss, cj, 0, render_events([1]))
    cloud_poll.poll_all()
    fake_bc.fail_job(cj.cloud_id, "The cluster cls-x has no VM left (ECS out of stock).")
    cloud_poll.poll_all()
    submitted.refresh_from_db()
    assert submitted.state == JobState.FAILED
    for task in submitted.tasks.all():
        assert task.state == TaskState.FAILED
        assert "ECS out of stock" in task.failure_reason
    assert submitted.frames_done == 1 and submitted.frames_failed == 5
    cj.refresh_from_db()
    assert cj.state == CloudJobState.ENDED and cj.cloud_state == "Failed"
    assert "out of stock" in cj.message


def test_a_job_deleted_outside_renderhub_fails_its_chunks(
    submitted: RenderJob, fake_bc: FakeBatchCompute
) -> None:
    cj = cloud_job_of(submitted)
    del fake_bc.jobs[cj.cloud_id]
    cloud_poll.poll_all()
    submitted.refresh_from_db()
    assert submitted.state == JobState.FAILED
    assert "deleted outside RenderHub" in submitted.failure_reason


def test_a_poll_costs_a_bounded_number_of_calls(
    cloud_project: Any,
    cloud_software: Any,
    cloud_cluster: Any,
    django_capture_on_commit_callbacks: Any,
    fake_bc: FakeBatchCompute,
    cloud_oss: FakeOSS,
    settings: Any,
) -> None:
    settings.BATCHCOMPUTE_MAX_INSTANCES = 1000
    settings.RENDER_MAX_NODES_PER_JOB = 1000
    cloud_cluster.max_nodes = 1000
    cloud_cluster.save()
    job = submit_cloud(
        cloud_project,
        cloud_software,
        cloud_cluster,
        "1-250",
        nodes=250,
        capture=django_capture_on_commit_callbacks,
    )
    cj = cloud_job_of(job)
    fake_bc.start_instances(cj.cloud_id)

    def cycle() -> dict[str, int]:
        before = {r: fake_bc.count(r) for r in ("GET /jobs/{id}", LIST)}
        cloud_poll.poll_all()
        return {r: fake_bc.count(r) - before[r] for r in before}

    LIST = "GET /jobs/{id}/tasks/{task}/instances"
    assert cycle() == {"GET /jobs/{id}": 1, LIST: 2}  # two pages of 100 per cycle
    assert cycle() == {"GET /jobs/{id}": 1, LIST: 1}  # the third page: a full pass
    assert job.tasks.filter(state=TaskState.RUNNING).count() == 250
    assert cycle() == {"GET /jobs/{id}": 1, LIST: 0}  # nothing changed: job state only
    write_events(cloud_oss, cj, 7, [*render_events([8]), FINISHED_OK])
    fake_bc.finish_instance(cj.cloud_id, 7)
    assert cycle() == {"GET /jobs/{id}": 1, LIST: 2}
    assert job.tasks.get(index=7).state == TaskState.DONE


def test_a_restarted_manager_resumes_where_it_stopped(
    submitted: RenderJob, fake_bc: FakeBatchCompute, cloud_oss: FakeOSS
) -> None:
    from renderhub import cloud as bc
    from renderhub import storage

    cj = cloud_job_of(submitted)
    fake_bc.start_instances(cj.cloud_id)
    write_events(cloud_oss, cj, 0, render_events([1]))
    cloud_poll.poll_all()
    bc.reset_clients()  # a new process: no client, no caches, only the database
    storage.reset_cache()
    client = bc.get_client()
    client.backoff = 0.001
    write_events(cloud_oss, cj, 0, [*render_events([2])[1:], FINISHED_OK])
    fake_bc.finish_instance(cj.cloud_id, 0)
    cloud_poll.poll_all()
    submitted.refresh_from_db()
    assert submitted.frames_done == 2
    assert submitted.tasks.get(index=0).state == TaskState.DONE


def test_polling_survives_a_burst_of_server_errors(
    submitted: RenderJob, fake_bc: FakeBatchCompute
) -> None:
    cj = cloud_job_of(submitted)
    fake_bc.start_instances(cj.cloud_id)
    fake_bc.fail_next(2, status=500)
    cloud_poll.poll_all()
    assert submitted.tasks.filter(state=TaskState.RUNNING).count() == 3
    fake_bc.fail_next(10, status=503, route="GET /jobs/{id}")
    report = cloud_poll.poll_all()
    assert report.failed == 1
    cj.refresh_from_db()
    assert "ServiceUnavailable" in cj.error and cj.lease_until is None
    fake_bc.clear_faults()
    assert cloud_poll.poll_all().polled == 1


def test_running_chunks_keep_a_heartbeat_while_polled(
    submitted: RenderJob, fake_bc: FakeBatchCompute
) -> None:
    cj = cloud_job_of(submitted)
    fake_bc.start_instances(cj.cloud_id)
    cloud_poll.poll_all()
    Task.objects.update(heartbeat_at=timezone.now() - timezone.timedelta(minutes=5))
    cloud_poll.poll_all()
    assert services.reap_stale_tasks() == 0
