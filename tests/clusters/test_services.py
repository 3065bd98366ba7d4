"""Cluster operations against the fake BatchCompute: create, resize, delete, sync."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from clusters import services
from clusters.choices import Backend, ClusterState, NodeState
from clusters.models import Cluster
from renderhub.compute import ComputeError
from tests.fakes.batchcompute import FakeBatchCompute

pytestmark = pytest.mark.django_db


def new_cluster(image: Any, **fields: Any) -> Cluster:
    values: dict[str, Any] = {
        "name": "farm",
        "backend": Backend.BATCHCOMPUTE,
        "image": image,
        "instance_type": "bcs.a2.large",
        "disk_type": "cloud_ssd",
        "disk_size_gb": 60,
        "desired_nodes": 2,
    }
    values.update(fields)
    return Cluster(**values)


@pytest.fixture
def farm(cloud_image: Any, bc_settings: Any, fake_bc: FakeBatchCompute) -> Cluster:
    return services.create(new_cluster(cloud_image), user=None)


def test_create_makes_a_tagged_cloud_cluster(
    farm: Cluster, fake_bc: FakeBatchCompute, alice: Any
) -> None:
    assert farm.state == ClusterState.ACTIVE
    cloud = fake_bc.clusters[farm.cloud_cluster_id]
    assert re.fullmatch(r"rhtest-farm-[0-9a-f]{12}", cloud.desc["Name"])  # unique per row
    assert cloud.desc["Name"] == farm.cloud_name
    assert cloud.desc["ImageId"] == "img-blender"
    assert cloud.desc["Groups"]["group"] == {
        "DesiredVMCount": 2,
        "InstanceType": "bcs.a2.large",
        "ResourceType": "OnDemand",
    }
    assert cloud.desc["Configs"]["Disks"]["SystemDisk"] == {"Type": "cloud_ssd", "Size": 60}
    messages = list(farm.operations.values_list("message", flat=True))
    assert f"BatchCompute cluster {farm.cloud_cluster_id} created as {farm.cloud_name}" in messages


def test_spot_clusters_say_so(
    cloud_image: Any, bc_settings: Any, fake_bc: FakeBatchCompute
) -> None:
    from decimal import Decimal

    cluster = services.create(new_cluster(cloud_image, spot=True, spot_price_limit=Decimal("0.2")))
    group = fake_bc.clusters[cluster.cloud_cluster_id].desc["Groups"]["group"]
    assert group["ResourceType"] == "Spot"
    assert group["SpotStrategy"] == "SpotWithPriceLimit" and group["SpotPriceLimit"] == 0.2


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"instance_type": "ecs.huge"}, "instance_type", "Choose one of bcs.a2.large"),
        ({"instance_type": "bcs.a2.xlarge", "spot": True}, "instance_type", "Spot VMs"),
        ({"disk_type": "floppy"}, "disk_type", "cloud_efficiency, cloud_ssd"),
        ({"spot_price_limit": 1}, "spot_price_limit", "for spot VMs only"),
    ],
)
def test_create_checks_the_accounts_choices(
    cloud_image: Any,
    bc_settings: Any,
    fake_bc: FakeBatchCompute,
    fields: dict[str, Any],
    field: str,
    message: str,
) -> None:
    with pytest.raises(ValidationError) as caught:
        services.create(new_cluster(cloud_image, **fields))
    assert message in " ".join(caught.value.message_dict[field])
    assert not Cluster.objects.exists() and not fake_bc.clusters


def test_an_image_the_account_lacks_is_refused(
    cloud_image: Any, bc_settings: Any, fake_bc: FakeBatchCompute
) -> None:
    cloud_image.image_id = "img-nope"
    cloud_image.save()
    with pytest.raises(ValidationError) as caught:
        services.create(new_cluster(cloud_image))
    assert "img-blender" in caught.value.message_dict["image"][0]


def test_the_choices_are_cached(
    cloud_image: Any, bc_settings: Any, fake_bc: FakeBatchCompute
) -> None:
    first = services.cloud_choices()
    assert services.cloud_choices() == first
    assert ("bcs.a2.large", "bcs.a2.large (4 CPU, 8 GB)") in first.instance_types
    assert fake_bc.count("GET /available") == 1
    services.cloud_choices(refresh=True)
    assert fake_bc.count("GET /available") == 2


def test_a_refused_cluster_shows_error_with_the_reason(
    cloud_image: Any, bc_settings: Any, fake_bc: FakeBatchCompute
) -> None:
    fake_bc.fail_next(1, status=403, code="QuotaExhausted", route="POST /clusters")
    with pytest.raises(ComputeError, match="QuotaExhausted"):
        services.create(new_cluster(cloud_image))
    cluster = Cluster.objects.get()
    assert cluster.state == ClusterState.ERROR and "QuotaExhausted" in cluster.sync_error
    assert "refused" in cluster.operations.first().message


def test_a_crash_during_create_is_resumed_by_sync_without_a_second_cluster(
    cloud_image: Any,
    bc_settings: Any,
    fake_bc: FakeBatchCompute,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = Cluster.objects.filter

    def crash_on_save(*args: Any, **kwargs: Any) -> Any:
        if "pk" in kwargs and fake_bc.clusters:
            raise KeyboardInterrupt("the manager was killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(Cluster.objects, "filter", crash_on_save)
    with pytest.raises(KeyboardInterrupt):
        services.create(new_cluster(cloud_image))
    monkeypatch.undo()
    cluster = Cluster.objects.get()
    assert cluster.state == ClusterState.CREATING and not cluster.cloud_cluster_id
    services.sync(cluster)  # too early: the creation may still be under way
    assert fake_bc.count("POST /clusters") == 1 and not cluster.cloud_cluster_id
    Cluster.objects.update(updated_at=timezone.now() - timedelta(minutes=5))
    cluster.refresh_from_db()
    services.sync(cluster)
    cluster.refresh_from_db()
    assert cluster.cloud_cluster_id == next(iter(fake_bc.clusters))
    assert fake_bc.count("POST /clusters") == 1  # found by its tagged name


def test_resize_changes_the_desired_vms_zero_included(
    farm: Cluster, fake_bc: FakeBatchCompute
) -> None:
    fake_bc.tick()
    fake_bc.tick()
    services.sync(farm)
    services.resize(farm, 5)
    assert fake_bc.clusters[farm.cloud_cluster_id].desired == {"group": 5}
    assert farm.state == ClusterState.RESIZING
    services.resize(farm, 0)
    assert fake_bc.clusters[farm.cloud_cluster_id].desired == {"group": 0}
    for _ in range(3):
        fake_bc.tick()
    services.sync(farm)
    farm.refresh_from_db()
    assert (farm.desired_nodes, farm.actual_nodes, farm.state) == (0, 0, ClusterState.ACTIVE)
    assert not farm.nodes.exclude(state=NodeState.OFFLINE).exists()
    with pytest.raises(ValidationError):
        services.resize(farm, -1)


def test_sync_lists_the_vms_and_the_operation_log(farm: Cluster, fake_bc: FakeBatchCompute) -> None:
    services.sync(farm)
    assert farm.state == ClusterState.RESIZING  # VMs still starting
    assert set(farm.nodes.values_list("state", flat=True)) == {NodeState.STARTING}
    fake_bc.tick()
    fake_bc.tick()
    vm = fake_bc.clusters[farm.cloud_cluster_id].vms["group"][0]
    vm.error_code, vm.error_message = 17, "disk attach failed"
    services.sync(farm)
    farm.refresh_from_db()
    assert farm.state == ClusterState.ACTIVE and farm.actual_nodes == 2
    node = farm.nodes.get(name=vm.id)
    assert node.state == NodeState.FAILED and node.error == "17: disk attach failed"
    assert node.cloud_state == "Running" and str(node.ip_address).startswith("10.0.0.")
    assert node.launched_at is not None
    cloud_log = list(
        farm.operations.filter(source="batchcompute").values_list("message", flat=True)
    )
    assert cloud_log == ["[group] Creating instance group successfully"]
    services.sync(farm)  # each line once
    assert farm.operations.filter(source="batchcompute").count() == 1


def test_delete_deletes_in_the_cloud_and_sync_sees_it_gone(
    farm: Cluster, fake_bc: FakeBatchCompute
) -> None:
    services.delete(farm)
    assert farm.state == ClusterState.DELETING
    assert fake_bc.clusters[farm.cloud_cluster_id].state == "Deleting"
    fake_bc.tick()
    services.sync(farm)
    farm.refresh_from_db()
    assert farm.state == ClusterState.DELETED and not farm.nodes.exists()


def test_a_cluster_with_active_jobs_is_not_deleted(
    farm: Cluster, fake_bc: FakeBatchCompute, cloud_image: Any
) -> None:
    from images.models import Software
    from jobs.models import RenderJob
    from projects.models import Project

    project = Project.objects.create(name="p", image=cloud_image, output_prefix="oss://b/o/")
    RenderJob.objects.create(
        project=project,
        software=Software.objects.create(image=cloud_image, name="r", command_template=["r"]),
        cluster=farm,
        name="shot",
        scene_url="oss://b/s.blend",
        frame_spec="1",
        frame_count=1,
        node_count=1,
        output_url="oss://b/o/1/",
    )
    with pytest.raises(ComputeError, match="1 active render job"):
        services.delete(farm)
    assert fake_bc.clusters[farm.cloud_cluster_id].state == "Active"


def test_sync_all_isolates_failures(
    farm: Cluster, cloud_image: Any, fake_bc: FakeBatchCompute
) -> None:
    other = services.create(new_cluster(cloud_image, name="farm2"))
    fake_bc.fail_next(10, status=503, route="GET /clusters/{id}", after=0)
    assert services.sync_all() == 0
    fake_bc.clear_faults()
    assert services.sync_all() == 2
    other.refresh_from_db()
    assert other.sync_error == ""


def test_auto_clusters_have_nothing_in_the_cloud(
    cloud_image: Any, bc_settings: Any, fake_bc: FakeBatchCompute
) -> None:
    cluster = services.create(new_cluster(cloud_image, auto_cluster=True))
    assert cluster.state == ClusterState.ACTIVE and not cluster.cloud_cluster_id
    services.resize(cluster, 7)
    services.sync(cluster)
    services.delete(cluster)
    assert cluster.state == ClusterState.DELETED
    assert not fake_bc.clusters and fake_bc.count("POST /clusters") == 0


def test_celery_clusters_are_plain_rows(image: Any) -> None:
    cluster = services.create(Cluster(name="local2", image=image, desired_nodes=1))
    assert cluster.pk and cluster.backend == Backend.CELERY
    services.resize(cluster, 3)
    cluster.refresh_from_db()
    assert cluster.desired_nodes == 3
    assert [op.action for op in cluster.operations.all()] == ["resize", "create"]
