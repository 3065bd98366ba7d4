"""End to end: the fake BatchCompute runs the node package for real, per instance.

Submit -> the fake fetches the package from the OSS fake, materialises the mounts, runs
``renderhub_node.py`` (the node agent, the stand-in renderer) with the BATCH_COMPUTE_DAG_*
environment -> events, logs and frames land in the OSS fake -> the poller shows the job
finished with every frame, its thumbnails and its logs.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.core.management import call_command

from jobs.backends.batchcompute import finish as cloud_finish
from jobs.backends.batchcompute import poll as cloud_poll
from jobs.choices import FrameState, JobState, TaskState
from jobs.models import CloudJob, RenderJob
from tests.compute.fixtures import submit_cloud
from tests.fakes.batchcompute import FakeBatchCompute
from tests.fakes.oss import FakeOSS

pytestmark = pytest.mark.django_db


def run_until_done(job: RenderJob, capture: Any, timeout: float = 60) -> RenderJob:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with capture(execute=True):
            report = cloud_poll.poll_all()
        for pk in report.to_finish:
            cloud_finish.finish(pk)
        job.refresh_from_db()
        if (
            not job.is_active
            and not report.to_finish
            and not CloudJob.objects.filter(job=job, finished_at__isnull=True).exists()
        ):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job.pk} still {job.state} after {timeout} s")


def test_a_render_runs_on_the_fake_cloud_from_submit_to_thumbnails(
    cloud_project: Any,
    cloud_software: Any,
    cloud_cluster: Any,
    django_capture_on_commit_callbacks: Any,
    fake_bc: FakeBatchCompute,
    cloud_oss: FakeOSS,
    bucket: str,
    capsys: Any,
) -> None:
    fake_bc.run_commands = True
    job = submit_cloud(
        cloud_project,
        cloud_software,
        cloud_cluster,
        "1-6",
        nodes=3,
        capture=django_capture_on_commit_callbacks,
    )
    job = run_until_done(job, django_capture_on_commit_callbacks)
    assert job.state == JobState.FINISHED, job.failure_reason
    assert job.frames_done == 6
    prefix = job.output_url.removeprefix(f"oss://{bucket}/")
    keys = set(cloud_oss.keys(bucket))
    for n in range(1, 7):
        assert f"{prefix}shot_a_{n:04d}.png" in keys
        frame = job.frame_set.get(number=n)
        assert frame.state == FrameState.DONE
        assert frame.output_url == f"{job.output_url}shot_a_{n:04d}.png"
        assert frame.thumbnail_url == f"{job.output_url}_thumbs/shot_a_{n:04d}.jpg"
        assert f"{prefix}_thumbs/shot_a_{n:04d}.jpg" in keys
    cj = CloudJob.objects.get(job=job)
    for task in job.tasks.all():
        assert task.state == TaskState.DONE
        assert task.node.startswith("192.168.")
        assert "frame_done" in task.agent_log_tail
        assert f"{prefix}_logs/task-{task.index}/agent.log" in keys
        log_prefix = cj.log_url.removeprefix(f"oss://{bucket}/")
        assert f"{log_prefix}stdout.{cj.cloud_id}.render.{task.cloud_instance}" in keys
        assert f"{log_prefix}agent.log.{cj.cloud_id}.render.{task.cloud_instance}" in keys

    events = [k for k in keys if k.startswith(f"{log_prefix}events/")]
    assert len(events) == 3
    for key in events:  # only what the poller reads: no progress or log lines
        kinds = {line.split(b'"')[3] for line in cloud_oss.get(bucket, key).data.splitlines()}
        assert kinds == {b"staged", b"started", b"frame_started", b"frame_done", b"finished"}
    # The instance's own stdout (the node entry's output: the agent's events), for a VM
    # that failed before the agent could log anything.
    call_command("logs", str(job.pk), "--task", "0", "--node-stdout")
    assert '"event": "finished"' in capsys.readouterr().out
    # The logs command reads the chunk's whole log from OSS, as on own machines.
    call_command("logs", str(job.pk), "--task", "1", "--log-stdout")
    assert "Saved: '" in capsys.readouterr().out


@pytest.mark.parametrize("keeps_running", [False, True], ids=["job-ends", "job-stays-running"])
def test_a_failing_render_fails_with_the_renderers_words_after_the_retries(
    cloud_project: Any,
    cloud_software: Any,
    cloud_cluster: Any,
    django_capture_on_commit_callbacks: Any,
    fake_bc: FakeBatchCompute,
    settings: Any,
    keeps_running: bool,
) -> None:
    """Either way BatchCompute reads an instance failed for good, nothing runs on after."""
    settings.RENDER_TASK_MAX_ATTEMPTS = 2
    fake_bc.failed_instance_keeps_job_running = keeps_running
    fake_bc.run_commands = True
    job = submit_cloud(
        cloud_project,
        cloud_software,
        cloud_cluster,
        "1-2",
        nodes=1,
        parameters={"mode": "fail"},
        capture=django_capture_on_commit_callbacks,
    )
    job = run_until_done(job, django_capture_on_commit_callbacks)
    assert job.state == JobState.FAILED
    task = job.tasks.get()
    assert task.attempts == 2
    assert "License server unreachable" in task.failure_reason
    assert "License server unreachable" in task.stderr_tail
    cloud_id = CloudJob.objects.get(job=job).cloud_id
    assert fake_bc.jobs[cloud_id].state == ("Stopped" if keeps_running else "Finished")


def test_a_lost_vm_is_retried_and_the_chunk_still_renders(
    cloud_project: Any,
    cloud_software: Any,
    cloud_cluster: Any,
    django_capture_on_commit_callbacks: Any,
    fake_bc: FakeBatchCompute,
) -> None:
    job = submit_cloud(
        cloud_project,
        cloud_software,
        cloud_cluster,
        "1-2",
        nodes=1,
        capture=django_capture_on_commit_callbacks,
    )
    cj = CloudJob.objects.get(job=job)
    fake_bc.fail_attempts(cj.cloud_id, 0, times=1)
    fake_bc.run_commands = True
    job = run_until_done(job, django_capture_on_commit_callbacks)
    assert job.state == JobState.FINISHED, job.failure_reason
    assert job.tasks.get().attempts == 2
    assert job.frames_done == 2
