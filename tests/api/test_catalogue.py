"""Projects, images, software and clusters: who sees what, and cluster resizing (through
clusters.services, on a local cluster and on a BatchCompute one in the fake)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission

from clusters.choices import ClusterState
from clusters.models import Cluster
from tests.fakes.batchcompute import FakeBatchCompute

pytestmark = pytest.mark.django_db


def names(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["name"] for row in response.json()["results"]]


def test_members_see_their_projects_and_outsiders_get_404(
    token_client, alice, bob, charlie, project
) -> None:
    assert names(token_client(alice).get("/api/projects/")) == ["shots"]
    bobs = token_client(bob)
    assert names(bobs.get("/api/projects/")) == ["shots"]
    detail = bobs.get(f"/api/projects/{project.pk}/").json()
    assert detail["mappings"][0]["destination"] == "/mnt/scenes/"
    charlies = token_client(charlie)
    assert names(charlies.get("/api/projects/")) == []
    hidden = charlies.get(f"/api/projects/{project.pk}/")
    missing = charlies.get("/api/projects/999999/")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json() == missing.json()  # the same answer: existence is not revealed


def test_images_and_software_are_readable_by_everyone_logged_in(
    token_client, charlie, blender_software
) -> None:
    client = token_client(charlie)
    assert "local-linux" in names(client.get("/api/images/"))
    software = client.get(f"/api/software/{blender_software.pk}/").json()
    assert software["name"] == "blender"
    assert software["scene_suffixes"] == [".blend"]
    assert software["command_template"][0] == "blender"


def test_clusters_list_with_their_nodes(token_client, bob, cluster) -> None:
    from clusters.models import ClusterNode

    ClusterNode.objects.create(cluster=cluster, name="render@box1")
    client = token_client(bob)
    assert cluster.name in names(client.get("/api/clusters/"))
    detail = client.get(f"/api/clusters/{cluster.pk}/").json()
    assert detail["queue"] == f"render.{cluster.name}"
    assert [n["name"] for n in detail["nodes"]] == ["render@box1"]


def test_resizing_needs_the_change_cluster_permission(token_client, bob, cluster) -> None:
    response = token_client(bob).post(
        f"/api/clusters/{cluster.pk}/resize/", {"desired_nodes": 3}, format="json"
    )
    assert response.status_code == 403


def resize(client, cluster, body) -> Any:
    return client.post(f"/api/clusters/{cluster.pk}/resize/", body, format="json")


@pytest.fixture
def operator(bob) -> Any:
    """bob, allowed to change clusters."""
    bob.user_permissions.add(Permission.objects.get(codename="change_cluster"))
    return bob


def test_resize_sets_the_size_and_logs_who_did_it(token_client, operator, cluster) -> None:
    response = resize(token_client(operator), cluster, {"desired_nodes": 3})
    assert response.status_code == 200, response.content
    assert response.json()["desired_nodes"] == 3
    cluster.refresh_from_db()
    assert cluster.desired_nodes == 3
    [operation] = cluster.operations.filter(action="resize")
    assert (operation.user, operation.message) == (
        operator,
        "default split changed from 2 to 3 nodes (no machine started or stopped)",
    )


def test_resize_refusals_are_400_or_409_and_change_nothing(token_client, operator, cluster) -> None:
    client = token_client(operator)
    too_many = resize(client, cluster, {"desired_nodes": 9})
    assert too_many.status_code == 400
    [message] = too_many.json()["desired_nodes"]
    assert message.startswith("9 nodes is more than 4 (the max nodes of cluster")
    assert resize(client, cluster, {}).status_code == 400
    Cluster.objects.filter(pk=cluster.pk).update(state=ClusterState.DELETED)
    deleted = resize(client, cluster, {"desired_nodes": 1})
    assert deleted.status_code == 409
    assert deleted.json()["detail"] == f"Cluster {cluster} is deleted."
    cluster.refresh_from_db()
    assert cluster.desired_nodes == 2 and not cluster.operations.filter(action="resize").exists()


def test_resize_a_batchcompute_cluster(
    token_client, operator, cloud_cluster, fake_bc: FakeBatchCompute
) -> None:
    response = resize(token_client(operator), cloud_cluster, {"desired_nodes": 5})
    assert response.status_code == 200, response.content
    assert response.json()["desired_nodes"] == 5 and response.json()["state"] == "resizing"
    assert fake_bc.clusters[cloud_cluster.cloud_cluster_id].desired == {"group": 5}
    [operation] = cloud_cluster.operations.filter(action="resize")
    assert (operation.user, operation.message) == (operator, "resized from 2 to 5 nodes")


@pytest.mark.parametrize(
    ("status", "answer", "says"),
    [(503, 503, "ServiceUnavailable"), (400, 409, "InvalidParameter")],
)
def test_batchcompute_failures_are_answered_not_500(
    token_client, operator, cloud_cluster, fake_bc: FakeBatchCompute, status, answer, says
) -> None:
    # An outage may pass (503: try again); a refusal will not (409).
    fake_bc.fail_next(5, status=status, code=says, route="PUT /clusters/{id}")
    response = resize(token_client(operator), cloud_cluster, {"desired_nodes": 5})
    assert response.status_code == answer
    assert says in response.json()["detail"]
    cloud_cluster.refresh_from_db()
    assert cloud_cluster.desired_nodes == 2
    assert fake_bc.clusters[cloud_cluster.cloud_cluster_id].desired == {"group": 2}
    assert not cloud_cluster.operations.filter(action="resize").exists()


def test_resizing_a_cloud_cluster_not_created_yet_is_a_conflict(
    token_client, operator, cloud_cluster
) -> None:
    Cluster.objects.filter(pk=cloud_cluster.pk).update(
        cloud_cluster_id="", state=ClusterState.CREATING
    )
    response = resize(token_client(operator), cloud_cluster, {"desired_nodes": 5})
    assert response.status_code == 409
    assert "not created in BatchCompute yet" in response.json()["detail"]
