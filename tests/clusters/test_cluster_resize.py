"""``manage.py cluster_resize ID N``."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management.base import CommandError

from tests.clusters.cloud_commands import run
from tests.fakes.batchcompute import FakeBatchCompute

pytestmark = pytest.mark.django_db


def test_it_resizes_by_name_or_id_down_to_zero(
    cloud_cluster: Any, fake_bc: FakeBatchCompute
) -> None:
    out = run("cluster_resize", cloud_cluster.name, "5").out
    assert f"Cluster {cloud_cluster.name}: 2 -> 5 nodes (resizing)" in out
    run("cluster_resize", str(cloud_cluster.pk), "0")
    assert fake_bc.clusters[cloud_cluster.cloud_cluster_id].desired == {"group": 0}
    cloud_cluster.refresh_from_db()
    assert cloud_cluster.desired_nodes == 0
    assert cloud_cluster.operations.filter(action="resize").count() == 2


def test_it_refuses_a_negative_count_and_unknown_clusters(cloud_cluster: Any) -> None:
    with pytest.raises(CommandError, match="cannot be negative"):
        run("cluster_resize", cloud_cluster.name, "-1")
    with pytest.raises(CommandError, match="No cluster 'nope'"):
        run("cluster_resize", "nope", "1")


def test_it_reports_batchcompute_errors(cloud_cluster: Any, fake_bc: FakeBatchCompute) -> None:
    fake_bc.fail_next(5, status=503, route="PUT /clusters/{id}")
    with pytest.raises(CommandError, match="ServiceUnavailable"):
        run("cluster_resize", cloud_cluster.name, "4")
    cloud_cluster.refresh_from_db()
    assert cloud_cluster.desired_nodes == 2
