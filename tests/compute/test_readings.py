"""Issue 18: RenderHub rests on nothing the fake BatchCompute invented.

Where the documentation allows two readings, the fake can take either
(``FakeBatchCompute.documented_readings``); each test runs with both and asserts what a user
pays for: no cloud job is left running after its render job ended, and none is adopted from
another install.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.apps import apps
from django.core.management.color import no_style
from django.db import connection
from django.utils import timezone

from jobs.backends.batchcompute import finish as cloud_finish
from jobs.backends.batchcompute import poll as cloud_poll
from jobs.backends.batchcompute import submit as cloud_submit
from jobs.choices import FrameState, JobState, TaskState
from jobs.models import CloudJob, CloudJobState, RenderJob
from renderhub import batchcompute as bc
from tests.compute.fixtures import (
    FINISHED_OK,
    cloud_job_of,
    render_events,
    submit_cloud,
    write_events,
)
from tests.compute.test_batchcompute_client import make_client, plan
from tests.fakes.batchcompute import FakeBatchCompute
from tests.fakes.oss import FakeOSS

pytestmark = pytest.mark.django_db

LIVE = ("Waiting", "Running")


def assert_nothing_left_running(fake_bc: FakeBatchCompute) -> None:
    live = {j.id: j.state for j in fake_bc.jobs.values() if j.state in LIVE}
    assert not live, f"cloud jobs still running after their render job ended: {live}"


# --- 1. a cloud job never outlives its render job ----------------------------------------


@pytest.mark.parametrize("keeps_running", [False, True], ids=["job-ends", "job-stays-running"])
@pytest.mark.parametrize("policy", ["always", "succeeded"])
def test_a_chunk_failed_for_good_leaves_no_cloud_job_running(
    submitted: RenderJob,
    fake_bc: FakeBatchCompute,
    cloud_oss: FakeOSS,
    settings: Any,
    keeps_running: bool,
    policy: str,
) -> None:
    fake_bc.failed_instance_keeps_job_running = keeps_running
    settings.BATCHCOMPUTE_RELEASE = policy
    cj = cloud_job_of(submitted)
    fake_bc.start_instances(cj.cloud_id)
    for i, frames in ((0, [1, 2]), (2, [5, 6])):
        write_events(cloud_oss, cj, i, [*render_events(frames), FINISHED_OK])
        fake_bc.finish_instance(cj.cloud_id, i)
    for _ in range(3):  # MaxRetryCount 2: the third failure is for good
        fake_bc.finish_instance(cj.cloud_id, 1, exit_code=1, error_message="The VM was lost.")
    assert fake_bc.jobs[cj.cloud_id].state == ("Running" if keeps_running else "Finished")

    report = cloud_poll.poll_all()
    submitted.refresh_from_db()
    assert submitted.state == JobState.FAILED
    assert submitted.frames_done == 4
    assert_nothing_left_running(fake_bc)
    cj.refresh_from_db()
    assert cj.state == CloudJobState.ENDED and report.to_finish == [cj.pk]
    if keeps_running:
        assert cj.cloud_state == "Stopped"
        assert "stopped by RenderHub: every chunk had ended" in cj.message
    polls = fake_bc.count("GET /jobs/{id}")
    cloud_finish.finish(cj.pk)
    cloud_poll.poll_all()
    assert fake_bc.count("GET /jobs/{id}") == polls  # an ended job is not polled again
    cj.refresh_from_db()
    # "always" releases it; "succeeded" keeps a failed job for a look, but stopped.
    assert (cj.cloud_id in fake_bc.jobs) is (policy == "succeeded")
    assert_nothing_left_running(fake_bc)


def test_a_cancelled_job_on_an_auto_cluster_leaves_no_vm_running(
    cloud_project: Any,
    cloud_software: Any,
    auto_cluster: Any,
    fake_bc: FakeBatchCompute,
    django_capture_on_commit_callbacks: Any,
) -> None:
    from jobs import services

    job = submit_cloud(
        cloud_project, cloud_software, auto_cluster, capture=django_capture_on_commit_callbacks
    )
    cj = cloud_job_of(job)
    fake_bc.start_instances(cj.cloud_id)
    fake_bc.fail_next(3, status=503, route="POST /jobs/{id}/stop")  # the cancel's stop fails
    outcome = services.cancel_job(job)
    assert outcome.warnings
    assert fake_bc.jobs[cj.cloud_id].state == "Running"
    cloud_poll.poll_all()
    assert_nothing_left_running(fake_bc)
    cloud_poll.poll_all()
    cj.refresh_from_db()
    assert cj.state == CloudJobState.ENDED and cj.cloud_state == "Stopped"


def test_a_stop_asked_for_while_the_job_was_created_is_carried_out(
    cloud_project: Any,
    cloud_software: Any,
    cloud_cluster: Any,
    fake_bc: FakeBatchCompute,
    django_capture_on_commit_callbacks: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A cancel that lands while the job is being created: the stop that follows the create
    may fail, and the poller then stops it; never given up with the job left running."""
    real = cloud_submit._record_submitted

    def cancelled_meanwhile(cloud_job: CloudJob, cloud_id: str) -> None:
        real(cloud_job, cloud_id)
        CloudJob.objects.filter(pk=cloud_job.pk).update(stop_requested=True)
        fake_bc.fail_next(1, status=400, code="InvalidAction", route="POST /jobs/{id}/stop")

    monkeypatch.setattr(cloud_submit, "_record_submitted", cancelled_meanwhile)
    job = submit_cloud(
        cloud_project, cloud_software, cloud_cluster, capture=django_capture_on_commit_callbacks
    )
    cj = cloud_job_of(job)
    assert cj.state == CloudJobState.ACTIVE and fake_bc.jobs[cj.cloud_id].state == "Waiting"
    cloud_poll.poll_all()
    assert_nothing_left_running(fake_bc)


# --- 2. unique names and tokens: nothing adopted from another install ------------------------


def fresh_database() -> None:
    """What a reinstalled RenderHub has: no render jobs, and ids counting from 1 again."""
    RenderJob.objects.all().delete()
    models = list(apps.get_app_config("jobs").get_models())
    with connection.cursor() as cursor:
        for sql in connection.ops.sequence_reset_sql(no_style(), models):
            cursor.execute(sql)


@pytest.mark.parametrize("order", ["asked", "oldest_first", "shuffled"])
def test_a_reinstalled_renderhub_neither_adopts_nor_overwrites_the_old_installs_job(
    cloud_project: Any,
    cloud_software: Any,
    cloud_cluster: Any,
    django_capture_on_commit_callbacks: Any,
    fake_bc: FakeBatchCompute,
    cloud_oss: FakeOSS,
    bucket: str,
    monkeypatch: pytest.MonkeyPatch,
    order: str,
) -> None:
    fake_bc.list_order = order
    fresh_database()

    def submit() -> RenderJob:
        return submit_cloud(
            cloud_project, cloud_software, cloud_cluster, capture=django_capture_on_commit_callbacks
        )

    old = cloud_job_of(old_job := submit())
    old_spec_key = old.log_url.removeprefix(f"oss://{bucket}/") + "spec.json"
    old_spec = cloud_oss.get(bucket, old_spec_key).data
    fresh_database()

    # The new install's manager dies between creating its cloud job and saving its id.
    def crash(*args: Any) -> None:
        raise KeyboardInterrupt("the manager was killed")

    monkeypatch.setattr(cloud_submit, "_record_submitted", crash)
    with pytest.raises(KeyboardInterrupt):
        submit()
    monkeypatch.undo()
    new = CloudJob.objects.get()
    assert (new.pk, new.job_id) == (old.pk, old_job.pk)  # the same row ids as the old install
    assert new.name != old.name and new.log_url != old.log_url
    CloudJob.objects.update(lease_until=timezone.now())
    assert cloud_poll.poll_all().submitted == 1
    new.refresh_from_db()
    assert new.state == CloudJobState.ACTIVE
    assert new.cloud_id != old.cloud_id  # its own job, found by its own name
    assert fake_bc.jobs[new.cloud_id].name == new.name
    assert len(fake_bc.jobs) == 2 and fake_bc.count("POST /jobs") == 2
    assert cloud_oss.get(bucket, old_spec_key).data == old_spec  # the old folder untouched


@pytest.mark.parametrize("order", ["asked", "oldest_first", "shuffled"])
def test_find_job_does_not_depend_on_the_listing_order(
    fake_bc: FakeBatchCompute, order: str
) -> None:
    client = make_client(fake_bc)
    fake_bc.list_order = order
    ids = [client.create_job(plan(f"rh-r{i}-c1-x", count=1)) for i in range(150)]
    past, future = datetime.now(UTC) - timedelta(minutes=5), datetime.now(UTC) + timedelta(hours=1)
    for i in (0, 3, 77, 149):
        assert client.find_job(f"rh-r{i}-c1-x", past) == ids[i]
    assert client.find_job("rh-r3-c1", past) is None  # a name must match whole
    assert client.find_job("rh-r3-c1-x", future) is None  # too old to be ours
    client.calls.clear()
    assert client.find_job("rh-r999-c1-x", future) is None
    # Newest first as asked: the first page shows nothing newer can follow.
    assert client.calls["list_jobs"] == (1 if order == "asked" else 2)


# --- 3. a frame is done when its file is in storage ------------------------------------------


def test_a_frame_reported_but_not_uploaded_is_not_done(
    submitted: RenderJob,
    fake_bc: FakeBatchCompute,
    cloud_oss: FakeOSS,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cj = cloud_job_of(submitted)
    fake_bc.start_instances(cj.cloud_id)
    write_events(cloud_oss, cj, 0, [*render_events([1, 2]), FINISHED_OK], uploaded=False)
    write_events(cloud_oss, cj, 1, [*render_events([3, 4]), FINISHED_OK])
    write_events(cloud_oss, cj, 2, [*render_events([5]), FINISHED_OK])  # 6 not reported
    for i in range(3):
        fake_bc.finish_instance(cj.cloud_id, i)
    with caplog.at_level(logging.WARNING, logger="jobs.backends.batchcompute.poll"):
        cloud_poll.poll_all()
    submitted.refresh_from_db()
    assert submitted.frames_done == 3 and submitted.state == JobState.FAILED
    states = dict(submitted.frame_set.values_list("number", "state"))
    assert states == {
        1: FrameState.FAILED,
        2: FrameState.FAILED,
        3: FrameState.DONE,
        4: FrameState.DONE,
        5: FrameState.DONE,
        6: FrameState.FAILED,
    }
    assert submitted.frame_set.get(number=5).output_url.endswith("/shot_a_0005.png")
    reason = submitted.tasks.get(index=0).failure_reason
    assert "reported frame(s) 1, 2 rendered, but no file of theirs is in" in reason
    assert "ended without reporting frame(s) 6" in submitted.tasks.get(index=2).failure_reason
    assert "reported frame(s) 1, 2 rendered" in caplog.text  # a warning, not silence
    assert_nothing_left_running(fake_bc)


def test_a_reported_frame_whose_file_is_from_an_older_run_is_not_done(
    submitted: RenderJob, fake_bc: FakeBatchCompute, cloud_oss: FakeOSS, bucket: str
) -> None:
    """Another install's (or an older run's) file in the same folder is not this frame."""
    cj = cloud_job_of(submitted)
    write_events(cloud_oss, cj, 0, [*render_events([1, 2]), FINISHED_OK])
    prefix = submitted.output_url.removeprefix(f"oss://{bucket}/")
    cloud_oss.get(bucket, f"{prefix}shot_a_0002.png").mtime -= 86400  # written yesterday
    fake_bc.finish_instance(cj.cloud_id, 0)
    cloud_poll.poll_all()
    states = dict(submitted.frame_set.filter(task__index=0).values_list("number", "state"))
    assert states == {1: FrameState.DONE, 2: FrameState.FAILED}
    assert "reported frame(s) 2 rendered" in submitted.tasks.get(index=0).failure_reason


def test_an_instance_that_finished_without_any_event_does_no_frame(
    submitted: RenderJob, fake_bc: FakeBatchCompute, cloud_oss: FakeOSS, bucket: str
) -> None:
    """Even with files of its frames in the output folder (say from an older run)."""
    prefix = submitted.output_url.removeprefix(f"oss://{bucket}/")
    cloud_oss.put(bucket, f"{prefix}shot_a_0001.png", b"\x89PNG old")
    cj = cloud_job_of(submitted)
    for i in range(3):
        fake_bc.finish_instance(cj.cloud_id, i)
    cloud_poll.poll_all()
    submitted.refresh_from_db()
    assert submitted.frames_done == 0 and submitted.frames_failed == 6
    assert {t.state for t in submitted.tasks.all()} == {TaskState.FAILED}
    assert_nothing_left_running(fake_bc)


# --- 4. images listed with and without Type ---------------------------------------------------


@pytest.mark.parametrize("need_type", [False, True])
def test_system_and_own_images_are_offered_however_the_listing_reads(
    bc_settings: bc.BatchCompute, fake_bc: FakeBatchCompute, need_type: bool
) -> None:
    fake_bc.images_need_type = need_type
    images = dict(bc_settings.resources().images)
    assert images == {"img-ubuntu": "Ubuntu 16.04", "img-blender": "Blender 3.4"}
    system = [r for r in fake_bc.requests if r.route == "GET /images" and r.params.get("Type")]
    assert [r.params["Type"] for r in system] == ["System"]


# --- 5. what a user can see -------------------------------------------------------------------


def test_the_render_jobs_admin_page_shows_its_cloud_job(
    submitted: RenderJob, fake_bc: FakeBatchCompute, client: Any, alice: Any
) -> None:
    cj = cloud_job_of(submitted)
    fake_bc.fail_next(5, status=503, route="GET /jobs/{id}")
    cloud_poll.poll_all()
    cj.refresh_from_db()
    client.force_login(alice)
    page = client.get(f"/admin/jobs/renderjob/{submitted.pk}/change/").content.decode()
    assert "BatchCompute job" in page
    for shown in (cj.cloud_id, cj.name, "Waiting", "ServiceUnavailable", cj.log_url):
        assert shown in page, shown


def test_oss2_does_not_log_an_expected_404(
    bc_settings: Any, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    """oss2 logs every non-2xx answer at INFO ("Exception: {'status': 404 …}"); a missing
    object RenderHub only asked about is no news on a CLI's stderr."""
    from renderhub import storage

    backend, key = storage.resolve(f"oss://{bucket}/output/nothing-here.png")
    with caplog.at_level(logging.INFO):
        assert not backend.exists(key)
        with pytest.raises(storage.NotFound):
            backend.read(key)
    assert not [r for r in caplog.records if r.name.startswith("oss2")]


def test_manage_py_job_shows_its_cloud_jobs(
    submitted: RenderJob, fake_bc: FakeBatchCompute
) -> None:
    import io

    from django.core.management import call_command

    cj = cloud_job_of(submitted)
    fake_bc.fail_next(5, status=503, route="GET /jobs/{id}")
    cloud_poll.poll_all()
    out = io.StringIO()
    call_command("job", str(submitted.pk), stdout=out)
    text = out.getvalue()
    assert "BatchCompute jobs:" in text
    assert f"{cj.cloud_id} (active, BatchCompute: Waiting; 3 chunks)" in text
    assert "last error: BatchCompute get_job failed: HTTP 503 ServiceUnavailable" in text


def test_manage_py_logs_reaches_the_nodes_own_output(
    submitted: RenderJob, fake_bc: FakeBatchCompute, cloud_oss: FakeOSS, bucket: str
) -> None:
    import io

    from django.core.management import call_command

    cj = cloud_job_of(submitted)
    fake_bc.start_instances(cj.cloud_id)
    cloud_poll.poll_all()
    key = cj.log_url.removeprefix(f"oss://{bucket}/") + f"stdout.{cj.cloud_id}.render.1"
    cloud_oss.put(bucket, key, "python3: renderhub_node.py: Permission denied ✗\n".encode())
    out, err = io.StringIO(), io.StringIO()
    call_command("logs", str(submitted.pk), "--task", "1", "--node-stdout", stdout=out)
    assert out.getvalue() == "python3: renderhub_node.py: Permission denied ✗\n"
    call_command("logs", str(submitted.pk), "--task", "1", "--log-stdout", stdout=out, stderr=err)
    assert "--node-stdout and --node-stderr show the BatchCompute instance's" in err.getvalue()
