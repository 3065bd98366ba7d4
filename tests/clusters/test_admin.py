"""The Cluster and ClusterNode admin pages."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone

from clusters.choices import Backend, NodeState
from clusters.models import Cluster, ClusterNode

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client: Any, alice: Any) -> Any:
    client.force_login(alice)
    return client


@pytest.fixture
def node(cluster: Cluster) -> ClusterNode:
    return ClusterNode.objects.create(
        cluster=cluster,
        name="render@box-7",
        state=NodeState.BUSY,
        ip_address="10.0.0.7",
        cpu_percent=55.0,
        memory_percent=20.0,
        last_seen=timezone.now(),
    )


@pytest.mark.parametrize(
    "url",
    [
        "/admin/clusters/cluster/",
        "/admin/clusters/cluster/add/",
        "/admin/clusters/cluster/{cluster}/change/",
        "/admin/clusters/clusternode/",
        "/admin/clusters/clusternode/add/",
        "/admin/clusters/clusternode/{node}/change/",
    ],
)
def test_the_admin_pages_open(admin_client: Any, node: ClusterNode, url: str) -> None:
    response = admin_client.get(url.format(cluster=node.cluster_id, node=node.pk))
    assert response.status_code == 200


def test_the_cluster_list_shows_its_queue(admin_client: Any, cluster: Cluster) -> None:
    text = admin_client.get("/admin/clusters/cluster/").content.decode()
    assert f"render.{cluster.name}" in text


def test_the_cluster_page_lists_its_nodes(admin_client: Any, node: ClusterNode) -> None:
    text = admin_client.get(f"/admin/clusters/cluster/{node.cluster_id}/change/").content.decode()
    assert "render@box-7" in text
    assert "10.0.0.7" in text
    assert f"/admin/clusters/clusternode/{node.pk}/change/" in text  # show_change_link


def cluster_form(image: Any, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "farm-b",
        "backend": Backend.CELERY,
        "image": image.pk,
        "instance_type": "",
        "disk_type": "",
        "disk_size_gb": "40",
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


def test_adding_a_cluster(admin_client: Any, image: Any) -> None:
    response = admin_client.post("/admin/clusters/cluster/add/", cluster_form(image))
    assert response.status_code == 302
    assert Cluster.objects.get(name="farm-b").queue == "render.farm-b"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"name": "farm b"}, "Use letters, digits, '-' and '_' only"),
        ({"name": "-farm"}, "Use letters, digits, '-' and '_' only"),
        ({"backend": Backend.BATCHCOMPUTE}, "A BatchCompute cluster needs an instance type."),
        ({"max_nodes": "0"}, "Ensure this value is greater than or equal to 1."),
    ],
)
def test_an_invalid_cluster_is_refused(
    admin_client: Any, image: Any, overrides: dict[str, str], message: str
) -> None:
    response = admin_client.post("/admin/clusters/cluster/add/", cluster_form(image, **overrides))
    assert response.status_code == 200
    assert message in response.content.decode().replace("&#x27;", "'")
    assert not Cluster.objects.filter(name__in=["farm-b", "farm b", "-farm"]).exists()


def test_an_own_machines_cluster_shows_no_cloud_fields_and_no_editable_state(
    admin_client: Any, cluster: Cluster
) -> None:
    html = admin_client.get(f"/admin/clusters/cluster/{cluster.pk}/change/").content.decode()
    for cloud_field in ("instance_type", "disk_type", "spot_price_limit", "auto_cluster"):
        assert f'name="{cloud_field}"' not in html
    assert 'name="state"' not in html  # shown, not editable
    assert "Nodes per job" in html and cluster.queue in html
    # Saving the form keeps the state whatever is posted.
    data = cluster_form(cluster.image, name=cluster.name, state="deleted")
    assert (
        admin_client.post(f"/admin/clusters/cluster/{cluster.pk}/change/", data).status_code == 302
    )
    cluster.refresh_from_db()
    assert cluster.state == "active"


def test_the_add_form_keeps_the_cloud_fields_in_their_own_fieldset(
    admin_client: Any, image: Any
) -> None:
    html = admin_client.get("/admin/clusters/cluster/add/").content.decode()
    assert 'class="module batchcompute' in html or "batchcompute" in html
    assert "Only for BatchCompute clusters." in html and "js/cluster-form.js" in html
    assert 'name="state"' not in html


def test_resizing_own_machines_says_what_it_does(admin_client: Any, cluster: Cluster) -> None:
    response = admin_client.post(
        "/admin/clusters/cluster/",
        {"action": "resize_clusters", "_selected_action": [cluster.pk], "apply": "1", "nodes": 3},
        follow=True,
    )
    text = response.content.decode()
    assert "split over 3 nodes by default" in text and "does not start or stop" in text
    [operation] = cluster.operations.filter(action="resize")
    assert "no machine started or stopped" in operation.message


def test_the_cluster_page_says_whose_broker_credential_its_nodes_hold(
    admin_client: Any, cluster: Cluster
) -> None:
    page = f"/admin/clusters/cluster/{cluster.pk}/change/"
    assert f"manage.py node_user {cluster.name}" in admin_client.get(page).content.decode()
    Cluster.objects.filter(pk=cluster.pk).update(broker_user=f"renderhub-node-{cluster.name}")
    text = admin_client.get(page).content.decode()
    assert f"its queue is under renderhub.cluster.{cluster.name}:" in text
