"""Render jobs on BatchCompute, instance by instance: the fake is driven by the test."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.utils import timezone

from jobs import services
from jobs.backends.batchcompute import poll as cloud_poll
from jobs.backends.batchcompute import submit as cloud_submit
from jobs.choices import JobState
from jobs.models import CloudJob, CloudJobState, RenderJob
from tests.compute.fixtures import (
    cloud_job_of,
    submit_cloud,
)
from tests.fakes.batchcompute import FakeBatchCompute
from tests.fakes.oss import FakeOSS

pytestmark = pytest.mark.django_db


# --- submission ---------------------------------------------------------------------------


def test_a_job_becomes_one_cloud_job_with_an_instance_per_chunk(
    submitted: RenderJob, fake_bc: FakeBatchCompute, cloud_cluster: Any, bucket: str
) -> None:
    cj = cloud_job_of(submitted)
    assert cj.state == CloudJobState.ACTIVE
    assert re.fullmatch(rf"rhtest-r{submitted.pk}-c{cj.pk}-[0-9a-f]{{12}}", cj.name)
    folder = f"cloud-{cj.name.removeprefix(f'rhtest-r{submitted.pk}-')}"
    assert cj.log_url == f"{submitted.output_url}_logs/{folder}/"
    [post] = [r for r in fake_bc.requests if r.route == "POST /jobs"]
    assert post.body["Name"] == post.params["IdempotentToken"] == cj.name
    job = fake_bc.jobs[cj.cloud_id]
    assert job.name == cj.name
    desc = job.desc
    assert desc["Type"] == "DAG" and desc["Priority"] == 500
    assert desc["JobFailOnInstanceFail"] is False and desc["AutoRelease"] is False
    task = desc["DAG"]["Tasks"]["render"]
    assert task["InstanceCount"] == 3
    assert task["ClusterId"] == cloud_cluster.cloud_cluster_id
    assert "AutoCluster" not in task  # reading task.AutoCluster would have added one
    assert task["MaxRetryCount"] == 2
    command = task["Parameters"]["Command"]
    assert command["CommandLine"].endswith("renderhub_node.py")
    assert command["PackagePath"].startswith(f"oss://{bucket}/renderhub-rhtest/packages/")
    assert command["EnvVars"]["RENDERHUB_SPECS"] == f"/renderhub/control/{folder}/spec.json"
    assert task["Parameters"]["StdoutRedirectPath"] == cj.log_url
    entries = {e["Destination"]: e for e in task["Mounts"]["Entries"]}
    assert entries["/mnt/scenes/"] == {
        "Source": f"oss://{bucket}/scenes/",
        "Destination": "/mnt/scenes/",
        "WriteSupport": False,
    }
    assert entries["/renderhub/control/"]["WriteSupport"] is True
    assert task["OutputMapping"] == {"/renderhub/publish/": submitted.output_url}
    assert task["LogMapping"] == {"/renderhub/work/agent.log": cj.log_url}
    tasks = list(submitted.tasks.order_by("index"))
    assert [t.cloud_instance for t in tasks] == [0, 1, 2]
    assert all(t.queued_at and t.cloud_job_id == cj.pk for t in tasks)


def test_the_specs_of_every_chunk_are_uploaded(
    submitted: RenderJob, cloud_oss: FakeOSS, bucket: str
) -> None:
    import json

    cj = cloud_job_of(submitted)
    key = cj.log_url.removeprefix(f"oss://{bucket}/") + "spec.json"
    specs = json.loads(cloud_oss.get(bucket, key).data)
    assert specs["instances"] == [
        {"task": 0, "frames": [1, 2]},
        {"task": 1, "frames": [3, 4]},
        {"task": 2, "frames": [5, 6]},
    ]
    common = specs["common"]
    assert common["scene"] == "/mnt/scenes/shot_a.blend"
    assert common["publish_dir"] == "/renderhub/publish"
    assert common["output_name"] == "shot_a_####"
    folder = cj.log_url.rstrip("/").rsplit("/", 1)[1]
    assert specs["events_dir"] == f"/renderhub/control/{folder}/events/"


def test_the_package_is_uploaded_once_under_its_content_hash(
    cloud_project: Any,
    cloud_software: Any,
    cloud_cluster: Any,
    django_capture_on_commit_callbacks: Any,
    cloud_oss: FakeOSS,
    bucket: str,
) -> None:
    from jobs.backends.batchcompute import package as bc

    cloud_submit._uploaded.clear()
    for _ in range(2):
        submit_cloud(
            cloud_project,
            cloud_software,
            cloud_cluster,
            capture=django_capture_on_commit_callbacks,
        )
    data, name = bc.node_package()
    packages = [k for k in cloud_oss.keys(bucket) if "/packages/" in k]
    assert packages == [f"renderhub-rhtest/packages/{name}"]
    assert cloud_oss.get(bucket, packages[0]).data == data
    assert (
        cloud_oss.count("PUT", bucket=bucket)
        - cloud_oss.count("PUT", bucket=bucket, param="partNumber")
        == 3
    )  # the package once, a spec per job


def test_an_auto_cluster_job_asks_for_its_own_vms(
    cloud_project: Any,
    cloud_software: Any,
    auto_cluster: Any,
    django_capture_on_commit_callbacks: Any,
    fake_bc: FakeBatchCompute,
) -> None:
    job = submit_cloud(
        cloud_project, cloud_software, auto_cluster, capture=django_capture_on_commit_callbacks
    )
    task = fake_bc.jobs[cloud_job_of(job).cloud_id].desc["DAG"]["Tasks"]["render"]
    assert "ClusterId" not in task
    auto = task["AutoCluster"]
    assert auto["ImageId"] == "img-blender"
    assert auto["InstanceType"] == "bcs.a2.large"
    assert auto["ResourceType"] == "Spot" and auto["SpotStrategy"] == "SpotAsPriceGo"


def test_an_auto_cluster_runs_at_most_max_nodes_instances(
    cloud_project: Any,
    cloud_software: Any,
    auto_cluster: Any,
    django_capture_on_commit_callbacks: Any,
    fake_bc: FakeBatchCompute,
) -> None:
    job = submit_cloud(
        cloud_project,
        cloud_software,
        auto_cluster,
        "1-10",
        nodes=None,
        chunk_size=2,
        capture=django_capture_on_commit_callbacks,
    )
    assert job.tasks.count() == 5
    [cj] = job.cloud_jobs.all()
    assert cj.instance_count == 3  # max_nodes
    assert job.tasks.filter(queued_at__isnull=True).count() == 2
    assert services.dispatch(job.pk) == 2  # no room yet: nothing new is created
    assert job.cloud_jobs.count() == 1


def test_a_job_that_cannot_run_on_batchcompute_fails_with_the_reason(
    cloud_project: Any,
    cloud_software: Any,
    cloud_cluster: Any,
    django_capture_on_commit_callbacks: Any,
    storage_url: str,
    storage_root: Any,
) -> None:
    cloud_project.output_prefix = storage_url + "output/"
    cloud_project.save()
    job = submit_cloud(
        cloud_project, cloud_software, cloud_cluster, capture=django_capture_on_commit_callbacks
    )
    assert job.state == JobState.FAILED
    assert "is not oss://" in job.failure_reason
    assert not CloudJob.objects.exists()


def test_a_refused_job_fails_its_chunks(
    cloud_project: Any,
    cloud_software: Any,
    cloud_cluster: Any,
    django_capture_on_commit_callbacks: Any,
    fake_bc: FakeBatchCompute,
) -> None:
    fake_bc.fail_next(1, status=400, code="QuotaExhausted", route="POST /jobs")
    job = submit_cloud(
        cloud_project, cloud_software, cloud_cluster, capture=django_capture_on_commit_callbacks
    )
    assert job.state == JobState.FAILED
    assert "QuotaExhausted" in job.failure_reason
    assert cloud_job_of(job).state == CloudJobState.ENDED


def test_a_crash_between_creating_and_saving_creates_no_second_job(
    cloud_project: Any,
    cloud_software: Any,
    cloud_cluster: Any,
    django_capture_on_commit_callbacks: Any,
    fake_bc: FakeBatchCompute,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def crash(*args: Any) -> None:
        raise KeyboardInterrupt("the manager was killed")

    monkeypatch.setattr(cloud_submit, "_record_submitted", crash)
    with pytest.raises(KeyboardInterrupt):
        submit_cloud(
            cloud_project,
            cloud_software,
            cloud_cluster,
            capture=django_capture_on_commit_callbacks,
        )
    monkeypatch.undo()
    cj = CloudJob.objects.get()
    assert cj.state == CloudJobState.SUBMITTING and not cj.cloud_id
    assert len(fake_bc.jobs) == 1
    cloud_poll.poll_all()  # the lease of the dead attempt still holds
    assert fake_bc.count("POST /jobs") == 1
    CloudJob.objects.update(lease_until=timezone.now())  # ... until it runs out
    report = cloud_poll.poll_all()
    assert report.submitted == 1
    cj.refresh_from_db()
    assert cj.state == CloudJobState.ACTIVE
    assert cj.cloud_id == next(iter(fake_bc.jobs))
    assert fake_bc.count("POST /jobs") == 1  # found by its tagged name, not created again
    assert fake_bc.count("GET /jobs") == 1


def test_a_transient_failure_leaves_the_submission_for_the_poller(
    cloud_project: Any,
    cloud_software: Any,
    cloud_cluster: Any,
    django_capture_on_commit_callbacks: Any,
    fake_bc: FakeBatchCompute,
) -> None:
    fake_bc.fail_next(3, status=503, route="POST /jobs")  # more than the retries
    job = submit_cloud(
        cloud_project, cloud_software, cloud_cluster, capture=django_capture_on_commit_callbacks
    )
    cj = cloud_job_of(job)
    assert cj.state == CloudJobState.SUBMITTING
    assert "ServiceUnavailable" in cj.error
    assert job.state == JobState.QUEUED
    CloudJob.objects.update(lease_until=timezone.now())
    cloud_poll.poll_all()
    cj.refresh_from_db()
    assert cj.state == CloudJobState.ACTIVE and cj.cloud_id in fake_bc.jobs
    assert len(fake_bc.jobs) == 1
