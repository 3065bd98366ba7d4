"""Projects, images, software and clusters: who sees what, and cluster resizing."""

from __future__ import annotations

import sys
import types

import pytest
from django.contrib.auth.models import Permission

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


def test_resize_says_501_while_clusters_services_has_no_resize(
    token_client, alice, cluster, monkeypatch
) -> None:
    monkeypatch.setitem(sys.modules, "clusters.services", types.ModuleType("clusters.services"))
    response = token_client(alice).post(
        f"/api/clusters/{cluster.pk}/resize/", {"desired_nodes": 3}, format="json"
    )
    assert response.status_code == 501
    assert "not available" in response.json()["detail"]


def test_resize_calls_the_cluster_service(token_client, bob, cluster, monkeypatch) -> None:
    from django.core.exceptions import ValidationError

    calls = []

    def resize(target, desired_nodes):
        if desired_nodes > 8:
            raise ValidationError({"desired_nodes": "At most 8 nodes."})
        calls.append((target.pk, desired_nodes))
        type(target).objects.filter(pk=target.pk).update(desired_nodes=desired_nodes)

    module = types.ModuleType("clusters.services")
    module.resize = resize  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "clusters.services", module)
    bob.user_permissions.add(Permission.objects.get(codename="change_cluster"))
    client = token_client(bob)
    response = client.post(
        f"/api/clusters/{cluster.pk}/resize/", {"desired_nodes": 3}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["desired_nodes"] == 3 and calls == [(cluster.pk, 3)]
    refused = client.post(
        f"/api/clusters/{cluster.pk}/resize/", {"desired_nodes": 9}, format="json"
    )
    assert refused.status_code == 400
    assert refused.json() == {"desired_nodes": ["At most 8 nodes."]}
    assert client.post(f"/api/clusters/{cluster.pk}/resize/", {}, format="json").status_code == 400
