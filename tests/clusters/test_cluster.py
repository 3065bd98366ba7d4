"""``manage.py cluster ID``."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management.base import CommandError

from tests.clusters.cloud_commands import run
from tests.fakes.batchcompute import FakeBatchCompute

pytestmark = pytest.mark.django_db


def test_it_shows_the_nodes_and_the_operation_log(
    cloud_cluster: Any, fake_bc: FakeBatchCompute
) -> None:
    out = run("cluster", cloud_cluster.name, "--sync").out
    vm = fake_bc.clusters[cloud_cluster.cloud_cluster_id].vms["group"][0]
    assert f"cluster #{cloud_cluster.pk}" in out
    assert "instance type:" in out and "bcs.a2.large" in out
    assert vm.id in out and vm.ip in out and "Running" in out
    assert "Operation log (newest first):" in out
    assert "batchcompute: [group] Creating instance group successfully" in out
    assert f"BatchCompute cluster {cloud_cluster.cloud_cluster_id} created" in out


def test_it_reports_a_failed_sync(cloud_cluster: Any, fake_bc: FakeBatchCompute) -> None:
    fake_bc.fail_next(5, status=500, route="GET /clusters/{id}")
    with pytest.raises(CommandError, match="InternalError"):
        run("cluster", str(cloud_cluster.pk), "--sync")


def test_it_shows_a_celery_cluster(cluster: Any) -> None:
    out = run("cluster", f"#{cluster.pk}").out
    assert cluster.name in out and "No nodes." in out
