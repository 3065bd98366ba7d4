"""Issue 18 for clusters: nothing adopted from another install, no cluster deleted under a
running cloud job without --force, and DesiredVMCount 0 whichever way the service reads it.
The fake takes either documented reading (``FakeBatchCompute.documented_readings``)."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from clusters import services
from clusters.choices import Backend, ClusterState
from clusters.models import Cluster
from jobs.backends.batchcompute import poll as cloud_poll
from jobs.choices import JobState
from jobs.models import CloudJobState, RenderJob
from renderhub import cloud as config
from renderhub.compute import ComputeError
from tests.compute.fixtures import FINISHED_OK, cloud_job_of, render_events, write_events
from tests.compute.test_readings import assert_nothing_left_running
from tests.fakes.batchcompute import FakeBatchCompute
from tests.fakes.oss import FakeOSS

pytestmark = pytest.mark.django_db


def new_cluster(image: Any, name: str = "farm", nodes: int = 2) -> Cluster:
    return Cluster(
        name=name,
        backend=Backend.BATCHCOMPUTE,
        image=image,
        instance_type="bcs.a2.large",
        desired_nodes=nodes,
        max_nodes=8,
    )


# --- no cluster deleted under a cloud job that has not ended -----------------------------


def test_a_cluster_whose_cloud_job_runs_on_is_deleted_only_with_force(
    submitted: RenderJob,
    cloud_cluster: Cluster,
    fake_bc: FakeBatchCompute,
    cloud_oss: FakeOSS,
) -> None:
    """The render job failed; its cloud job stays Running (the other reading) and stopping
    it fails for now: the cluster under it is not deleted unless forced."""
    fake_bc.failed_instance_keeps_job_running = True
    cj = cloud_job_of(submitted)
    fake_bc.start_instances(cj.cloud_id)
    for i, frames in ((0, [1, 2]), (2, [5, 6])):
        write_events(cloud_oss, cj, i, [*render_events(frames), FINISHED_OK])
        fake_bc.finish_instance(cj.cloud_id, i)
    for _ in range(3):
        fake_bc.finish_instance(cj.cloud_id, 1, exit_code=1)
    fake_bc.fail_next(100, status=503, route="POST /jobs/{id}/stop")
    assert cloud_poll.poll_all().failed == 1
    submitted.refresh_from_db()
    assert submitted.state == JobState.FAILED
    assert fake_bc.jobs[cj.cloud_id].state == "Running"

    with pytest.raises(CommandError) as refused:
        call_command("cluster_delete", cloud_cluster.name)
    assert f"1 BatchCompute job(s) that have not ended ({cj.cloud_id})" in str(refused.value)
    assert "--force" in str(refused.value)
    assert fake_bc.clusters[cloud_cluster.cloud_cluster_id].state == "Active"

    fake_bc.clear_faults()
    call_command("cluster_delete", cloud_cluster.name, "--force")
    assert_nothing_left_running(fake_bc)
    cloud_cluster.refresh_from_db()
    assert cloud_cluster.state == ClusterState.DELETING
    assert "forced: stopped 1 of 1" in cloud_cluster.operations.first().message
    cloud_poll.poll_all()
    cj.refresh_from_db()
    assert cj.state == CloudJobState.ENDED


def test_an_ended_cloud_job_does_not_hold_its_cluster(
    submitted: RenderJob, cloud_cluster: Cluster, fake_bc: FakeBatchCompute
) -> None:
    from jobs import services as job_services

    job_services.cancel_job(submitted)
    cloud_poll.poll_all()
    assert services.unfinished_cloud_jobs(cloud_cluster) == []
    call_command("cluster_delete", cloud_cluster.name)
    cloud_cluster.refresh_from_db()
    assert cloud_cluster.state == ClusterState.DELETING


# --- unique names: nothing adopted from another install ----------------------------------------


@pytest.mark.parametrize("order", ["asked", "shuffled"])
def test_a_cluster_created_again_under_the_same_name_is_a_cluster_of_its_own(
    cloud_image: Any,
    bc_settings: Any,
    fake_bc: FakeBatchCompute,
    settings: Any,
    order: str,
) -> None:
    fake_bc.list_order = order
    name = f"farm-{uuid.uuid4().hex[:6]}"
    old = services.create(new_cluster(cloud_image, name))
    Cluster.objects.filter(pk=old.pk).delete()  # a reinstall: the row is gone, not the cloud's
    # The old install's naming (the tag and the name, nothing else) is there too.
    decoy = config.get_client().create_cluster(services._plan(new_cluster(cloud_image, name)))

    # The new install loses the create's answer (a timeout): sync finds its own cluster.
    settings.BATCHCOMPUTE_TIMEOUT, settings.BATCHCOMPUTE_RETRIES = 0.5, 0
    config.reset_clients()
    fake_bc.delay_next(1, 1.0, route="POST /clusters")
    with pytest.raises(ComputeError):
        services.create(new_cluster(cloud_image, name))
    cluster = Cluster.objects.get(name=name)
    assert cluster.state == ClusterState.CREATING and not cluster.cloud_cluster_id
    deadline = time.monotonic() + 5
    while len(fake_bc.clusters) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)  # the held request is carried out after the client gave up
    Cluster.objects.filter(pk=cluster.pk).update(updated_at=timezone.now() - timedelta(minutes=2))
    cluster.refresh_from_db()
    services.sync(cluster)
    cluster.refresh_from_db()
    assert cluster.state != ClusterState.ERROR
    assert cluster.cloud_cluster_id not in (old.cloud_cluster_id, decoy)
    assert fake_bc.clusters[cluster.cloud_cluster_id].desc["Name"] == cluster.cloud_name
    assert cluster.cloud_name != old.cloud_name
    assert len(fake_bc.clusters) == 3 and fake_bc.count("POST /clusters") == 3
    messages = list(cluster.operations.values_list("message", flat=True))
    assert any("found again" in m for m in messages)
    created = f"BatchCompute cluster {cluster.cloud_cluster_id} created"
    assert not any(m.startswith(created) for m in messages)


# --- DesiredVMCount 0, allowed or not ---------------------------------------------------------


@pytest.mark.parametrize("refuses_zero", [False, True])
def test_resizing_to_zero_either_stops_the_vms_or_says_they_still_run(
    cloud_cluster: Cluster, fake_bc: FakeBatchCompute, refuses_zero: bool
) -> None:
    fake_bc.min_desired_vm_count = 1 if refuses_zero else 0
    cloud_id = cloud_cluster.cloud_cluster_id
    assert fake_bc.running_vms(cloud_id) == 2
    if refuses_zero:
        with pytest.raises(ComputeError) as refused:
            services.resize(cloud_cluster, 0)
        message = str(refused.value)
        assert f"BatchCompute refuses 0 VMs for cluster {cloud_cluster}" in message
        assert "it keeps its 2 VM(s), and their cost" in message
        assert f"cluster_delete {cloud_cluster.name}" in message
        cloud_cluster.refresh_from_db()
        assert cloud_cluster.desired_nodes == 2  # RenderHub does not claim what did not happen
        assert cloud_cluster.operations.first().message == message
    else:
        services.resize(cloud_cluster, 0)
    fake_bc.tick()
    fake_bc.tick()
    assert fake_bc.running_vms(cloud_id) == (2 if refuses_zero else 0)


@pytest.mark.parametrize("refuses_zero", [False, True])
def test_creating_an_empty_cluster_either_works_or_says_what_to_do(
    cloud_image: Any, bc_settings: Any, fake_bc: FakeBatchCompute, refuses_zero: bool
) -> None:
    fake_bc.min_desired_vm_count = 1 if refuses_zero else 0
    cluster = new_cluster(cloud_image, f"empty-{uuid.uuid4().hex[:6]}", nodes=0)
    if not refuses_zero:
        services.create(cluster)
        assert cluster.state == ClusterState.ACTIVE
        assert fake_bc.running_vms(cluster.cloud_cluster_id) == 0
        return
    with pytest.raises(ComputeError) as refused:
        services.create(cluster)
    assert "this region takes no cluster of 0 VMs" in str(refused.value)
    assert "AutoCluster" in str(refused.value)
    cluster.refresh_from_db()
    assert cluster.state == ClusterState.ERROR and "0 VMs" in cluster.sync_error
    assert fake_bc.clusters == {}


def test_clusters_from_before_keep_the_name_they_were_created_under(
    cloud_image: Any, settings: Any
) -> None:
    """The upgrade names existing cloud clusters as they were created (``<tag>-<name>``),
    so a creation interrupted before the upgrade is still found; new ones get a random part."""
    import importlib

    from django.apps import apps

    settings.RENDERHUB_DEPLOYMENT_TAG = "studio"
    old = Cluster.objects.create(
        name="farm-old", backend=Backend.BATCHCOMPUTE, image=cloud_image, instance_type="x"
    )
    auto = Cluster.objects.create(
        name="auto-old", backend=Backend.BATCHCOMPUTE, image=cloud_image, auto_cluster=True
    )
    importlib.import_module("clusters.migrations.0006_cloud_name").name_existing(apps, None)
    old.refresh_from_db()
    auto.refresh_from_db()
    assert (old.cloud_name, auto.cloud_name) == ("studio-farm-old", "")
