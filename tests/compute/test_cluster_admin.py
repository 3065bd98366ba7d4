"""The cluster admin for BatchCompute: create, resize and delete go through the services."""

from __future__ import annotations

from typing import Any

import pytest

from clusters import services
from clusters.choices import Backend, ClusterState
from clusters.models import Cluster
from tests.fakes.batchcompute import FakeBatchCompute

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client: Any, alice: Any, settings: Any) -> Any:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    client.force_login(alice)
    return client


def form(image: Any, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "farm-a",
        "backend": Backend.BATCHCOMPUTE,
        "image": image.pk,
        "instance_type": "bcs.a2.large",
        "disk_type": "cloud_efficiency",
        "disk_size_gb": "40",
        "spot_price_limit": "",
        "desired_nodes": "2",
        "max_nodes": "8",
        "state": "active",
        "nodes-TOTAL_FORMS": "0",
        "nodes-INITIAL_FORMS": "0",
        "nodes-MIN_NUM_FORMS": "0",
        "nodes-MAX_NUM_FORMS": "1000",
    }
    data.update(overrides)
    return data


def test_adding_a_batchcompute_cluster_creates_it_in_the_cloud(
    admin_client: Any, cloud_image: Any, bc_settings: Any, fake_bc: FakeBatchCompute, alice: Any
) -> None:
    response = admin_client.post("/admin/clusters/cluster/add/", form(cloud_image))
    assert response.status_code == 302
    cluster = Cluster.objects.get(name="farm-a")
    assert cluster.state == ClusterState.ACTIVE
    assert fake_bc.clusters[cluster.cloud_cluster_id].desc["Name"] == cluster.cloud_name
    assert cluster.cloud_name.startswith("rhtest-farm-a-")
    assert cluster.operations.filter(user=alice, action="create").exists()


def test_the_form_offers_what_the_account_has(
    admin_client: Any, cloud_image: Any, bc_settings: Any, fake_bc: FakeBatchCompute
) -> None:
    response = admin_client.post(
        "/admin/clusters/cluster/add/", form(cloud_image, instance_type="ecs.nope")
    )
    assert response.status_code == 200
    assert "Choose one of bcs.a2.large, bcs.a2.xlarge, ecs.sn1ne.large" in response.content.decode()
    assert not Cluster.objects.exists() and not fake_bc.clusters


def test_changing_desired_nodes_resizes_and_the_page_shows_nodes_and_log(
    admin_client: Any, cloud_cluster: Any, fake_bc: FakeBatchCompute
) -> None:
    services.sync(cloud_cluster)
    url = f"/admin/clusters/cluster/{cloud_cluster.pk}/change/"
    page = admin_client.get(url).content.decode()
    vm = fake_bc.clusters[cloud_cluster.cloud_cluster_id].vms["group"][0]
    assert vm.id in page and "Running" in page
    assert "[group] Creating instance group successfully" in page
    data = form(
        cloud_cluster.image,
        name=cloud_cluster.name,
        desired_nodes="0",
        **{"nodes-TOTAL_FORMS": "2", "nodes-INITIAL_FORMS": "2"},
    )
    for i, node in enumerate(cloud_cluster.nodes.all()):
        data[f"nodes-{i}-id"] = node.pk
        data[f"nodes-{i}-cluster"] = cloud_cluster.pk
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:3000]
    assert fake_bc.clusters[cloud_cluster.cloud_cluster_id].desired == {"group": 0}
    cloud_cluster.refresh_from_db()
    assert cloud_cluster.desired_nodes == 0 and cloud_cluster.instance_type == "bcs.a2.large"


def test_the_resize_action_asks_for_the_count(
    admin_client: Any, cloud_cluster: Any, fake_bc: FakeBatchCompute
) -> None:
    url = "/admin/clusters/cluster/"
    chosen = {"action": "resize_clusters", "_selected_action": [cloud_cluster.pk]}
    page = admin_client.post(url, chosen)
    assert page.status_code == 200 and "Resize 1 cluster" in page.content.decode()
    response = admin_client.post(url, {**chosen, "apply": "Resize", "nodes": "4"})
    assert response.status_code == 302
    assert fake_bc.clusters[cloud_cluster.cloud_cluster_id].desired == {"group": 4}


def test_the_sync_and_delete_actions(
    admin_client: Any, cloud_cluster: Any, fake_bc: FakeBatchCompute
) -> None:
    url = "/admin/clusters/cluster/"
    admin_client.post(url, {"action": "sync_clusters", "_selected_action": [cloud_cluster.pk]})
    assert cloud_cluster.nodes.count() == 2
    admin_client.post(url, {"action": "delete_clusters", "_selected_action": [cloud_cluster.pk]})
    cloud_cluster.refresh_from_db()
    assert cloud_cluster.state == ClusterState.DELETING
    assert fake_bc.clusters[cloud_cluster.cloud_cluster_id].state == "Deleting"


def test_deleting_the_row_deletes_the_cloud_cluster_first(
    admin_client: Any, cloud_cluster: Any, fake_bc: FakeBatchCompute
) -> None:
    response = admin_client.post(
        f"/admin/clusters/cluster/{cloud_cluster.pk}/delete/", {"post": "yes"}
    )
    assert response.status_code == 302
    assert not Cluster.objects.filter(pk=cloud_cluster.pk).exists()
    assert fake_bc.clusters[cloud_cluster.cloud_cluster_id].state == "Deleting"


def test_the_operation_log_pages_open(admin_client: Any, cloud_cluster: Any) -> None:
    assert admin_client.get("/admin/clusters/clusteroperation/").status_code == 200
