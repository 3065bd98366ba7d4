"""Render jobs on BatchCompute after they ran: cancel, finish (thumbnails, links), release,
test frames and event reading in turns. The fake is driven by the test."""

from __future__ import annotations

from typing import Any

import pytest

from jobs import services
from jobs.backends.batchcompute import finish as cloud_finish
from jobs.backends.batchcompute import poll as cloud_poll
from jobs.choices import FrameState, JobState, TaskState
from jobs.models import CloudJobState, RenderJob
from tests.compute.fixtures import (
    FINISHED_OK,
    assert_says_the_stop_is_retried,
    assert_stopped_by_the_poller,
    cloud_job_of,
    render_events,
    submit_cloud,
    write_events,
)
from tests.fakes.batchcompute import FakeBatchCompute
from tests.fakes.oss import FakeOSS

pytestmark = pytest.mark.django_db


# --- cancel, finish, release ----------------------------------------------------------------


def test_cancel_stops_the_cloud_job(submitted: RenderJob, fake_bc: FakeBatchCompute) -> None:
    cj = cloud_job_of(submitted)
    fake_bc.start_instances(cj.cloud_id)
    services.cancel_job(submitted)
    assert fake_bc.jobs[cj.cloud_id].state == "Stopped"
    cloud_poll.poll_all()
    cj.refresh_from_db()
    assert cj.state == CloudJobState.ENDED and cj.stop_requested
    submitted.refresh_from_db()
    assert submitted.state == JobState.CANCELLED


def test_a_stop_that_failed_is_a_warning_and_the_poller_retries_it(
    unstoppable_cloud_job: RenderJob, fake_bc: FakeBatchCompute
) -> None:
    job = unstoppable_cloud_job
    outcome = services.cancel_job(job)
    assert (outcome.ok, outcome.count) == (True, 3)
    assert outcome.message == f"Cancelled job #{job.pk} (3 chunks stopped)."
    [warning] = outcome.warnings
    assert_says_the_stop_is_retried(job, warning)
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED
    assert cloud_poll.poll_all().failed == 1  # BatchCompute still refuses: tried, not given up
    assert_stopped_by_the_poller(job, fake_bc)


def test_finish_makes_thumbnails_from_the_uploaded_outputs(
    submitted: RenderJob, fake_bc: FakeBatchCompute, cloud_oss: FakeOSS, bucket: str
) -> None:
    import io

    from PIL import Image

    cj = cloud_job_of(submitted)
    fake_bc.start_instances(cj.cloud_id)
    prefix = submitted.output_url.removeprefix(f"oss://{bucket}/")
    png = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 10, 10)).save(png, "PNG")
    for i, frames in enumerate(([1, 2], [3, 4], [5, 6])):
        # no outputs in the events: finish() finds the files by their names
        write_events(cloud_oss, cj, i, [*render_events(frames, outputs=False), FINISHED_OK])
        for n in frames:
            cloud_oss.put(bucket, f"{prefix}shot_a_{n:04d}.png", png.getvalue())
        fake_bc.finish_instance(cj.cloud_id, i)
    report = cloud_poll.poll_all()
    assert report.to_finish == [cj.pk]
    assert cloud_finish.finish(cj.pk) == 6
    assert cloud_finish.finish(cj.pk) == 0  # once
    frame = submitted.frame_set.get(number=4)
    assert frame.output_url == f"{submitted.output_url}shot_a_0004.png"
    assert frame.thumbnail_url == f"{submitted.output_url}_thumbs/shot_a_0004.jpg"
    assert cloud_oss.get(bucket, f"{prefix}_thumbs/shot_a_0004.jpg").data[:2] == b"\xff\xd8"


@pytest.mark.parametrize(
    ("policy", "fail", "released"),
    [
        ("always", True, True),
        ("succeeded", False, True),
        ("succeeded", True, False),
        ("never", False, False),
    ],
)
def test_ended_jobs_are_released_per_policy(
    submitted: RenderJob,
    fake_bc: FakeBatchCompute,
    cloud_oss: FakeOSS,
    settings: Any,
    policy: str,
    fail: bool,
    released: bool,
) -> None:
    settings.BATCHCOMPUTE_RELEASE = policy
    cj = cloud_job_of(submitted)
    fake_bc.start_instances(cj.cloud_id)
    for i, frames in enumerate(([1, 2], [3, 4], [5, 6])):
        if not (fail and i == 0):
            write_events(cloud_oss, cj, i, [*render_events(frames), FINISHED_OK])
        for _ in range(3 if fail and i == 0 else 1):
            fake_bc.finish_instance(cj.cloud_id, i, exit_code=1 if fail and i == 0 else 0)
    cloud_poll.poll_all()
    cloud_finish.finish(cj.pk)
    cloud_poll.poll_all()
    cj.refresh_from_db()
    assert (cj.released_at is not None) is released
    assert (cj.cloud_id in fake_bc.jobs) is not released


def test_a_test_frame_job_sends_the_rest_after_the_test_frame(
    cloud_project: Any,
    cloud_software: Any,
    cloud_cluster: Any,
    django_capture_on_commit_callbacks: Any,
    fake_bc: FakeBatchCompute,
    cloud_oss: FakeOSS,
) -> None:
    job = submit_cloud(
        cloud_project,
        cloud_software,
        cloud_cluster,
        "1-5",
        nodes=2,
        test_frame_first=True,
        capture=django_capture_on_commit_callbacks,
    )
    [first] = job.cloud_jobs.all()
    assert first.instance_count == 1
    fake_bc.start_instances(first.cloud_id)
    write_events(cloud_oss, first, 0, [*render_events([1]), FINISHED_OK])
    fake_bc.finish_instance(first.cloud_id, 0)
    with django_capture_on_commit_callbacks(execute=True):
        cloud_poll.poll_all()
    assert job.cloud_jobs.count() == 2
    second = job.cloud_jobs.exclude(pk=first.pk).get()
    assert second.instance_count == 2
    assert sorted(job.tasks.filter(cloud_job=second).values_list("cloud_instance", flat=True)) == [
        0,
        1,
    ]


def test_events_files_are_read_in_turns_beyond_the_per_job_cap(
    submitted: RenderJob,
    fake_bc: FakeBatchCompute,
    cloud_oss: FakeOSS,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cloud_poll, "EVENT_READS_PER_JOB", 1)
    cj = cloud_job_of(submitted)
    fake_bc.start_instances(cj.cloud_id)
    for i, frame in enumerate((1, 3, 5)):
        write_events(cloud_oss, cj, i, render_events([frame]))
    seen = []
    for _ in range(3):
        cloud_poll.poll_all()
        seen.append(submitted.frame_set.filter(state=FrameState.RUNNING).count())
    assert seen == [1, 2, 3]
    write_events(cloud_oss, cj, 2, [*render_events([6])[1:], FINISHED_OK])
    write_events(cloud_oss, cj, 1, render_events([4])[1:])
    fake_bc.finish_instance(cj.cloud_id, 2)
    cloud_poll.poll_all()  # the ended instance's file is read whatever the cap
    assert submitted.tasks.get(index=2).state == TaskState.DONE
    assert submitted.frame_set.get(number=5).state == FrameState.DONE
    assert submitted.frame_set.get(number=6).state == FrameState.DONE
