"""Cluster pages: nodes and their heartbeats; resizing through clusters.services.resize."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from clusters import services
from clusters.choices import NodeState
from clusters.models import ClusterNode

pytestmark = pytest.mark.django_db


@pytest.fixture
def nodes(cluster: Any) -> list[ClusterNode]:
    now = timezone.now()
    return [
        ClusterNode.objects.create(
            cluster=cluster, name="render@a", state=NodeState.BUSY, last_seen=now, cpu_percent=93
        ),
        ClusterNode.objects.create(
            cluster=cluster,
            name="render@b",
            state=NodeState.IDLE,
            last_seen=now - timedelta(hours=2),
            error="disk full",
        ),
    ]


def test_the_list_shows_nodes_and_whether_they_are_online(
    as_bob: Any, cluster: Any, nodes: Any
) -> None:
    response = as_bob.get("/clusters/")
    [shown] = response.context["clusters"]
    assert [n.online for n in shown.node_list] == [True, False]
    text = response.content.decode()
    assert "render@a" in text and "disk full" in text and "1/2 nodes online" in text
    partial = as_bob.get("/clusters/", HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in partial and "render@b" in partial


def test_detail_and_unknown_cluster(as_bob: Any, cluster: Any, nodes: Any) -> None:
    assert "render@a" in as_bob.get(f"/clusters/{cluster.pk}/").content.decode()
    assert as_bob.get("/clusters/9999/").status_code == 404


def test_members_without_cluster_permission_cannot_resize(as_bob: Any, cluster: Any) -> None:
    assert as_bob.get(f"/clusters/{cluster.pk}/").context["form"] is None
    assert as_bob.post(f"/clusters/{cluster.pk}/resize/", {"count": 3}).status_code == 403
    cluster.refresh_from_db()
    assert cluster.desired_nodes == 2


def test_superusers_resize_through_the_service(as_alice: Any, alice: Any, cluster: Any) -> None:
    assert as_alice.get(f"/clusters/{cluster.pk}/").context["form"] is not None
    response = as_alice.post(f"/clusters/{cluster.pk}/resize/", {"count": 3}, follow=True)
    assert response.status_code == 200
    cluster.refresh_from_db()
    assert cluster.desired_nodes == 3
    # Own machines: it says that only the default split changed.
    assert "split over 3 nodes by default" in response.content.decode()
    bad = as_alice.post(f"/clusters/{cluster.pk}/resize/", {"count": -1})
    assert bad.status_code == 400 and "count" in bad.context["form"].errors


def test_service_errors_show_on_the_form(as_alice: Any, cluster: Any, monkeypatch: Any) -> None:
    from django.core.exceptions import ValidationError

    def refuse(cluster: Any, count: int, user: Any = None) -> None:
        raise ValidationError({"desired_nodes": "BatchCompute quota exceeded."})

    monkeypatch.setattr(services, "resize", refuse)
    response = as_alice.post(f"/clusters/{cluster.pk}/resize/", {"count": 9})
    assert response.status_code == 400
    assert "BatchCompute quota exceeded." in response.content.decode()
