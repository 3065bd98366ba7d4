"""``manage.py cluster_delete ID``."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management.base import CommandError

from clusters.choices import ClusterState
from tests.clusters.cloud_commands import run
from tests.compute.fixtures import submit_cloud
from tests.fakes.batchcompute import FakeBatchCompute

pytestmark = pytest.mark.django_db


def test_it_deletes_the_cloud_cluster(cloud_cluster: Any, fake_bc: FakeBatchCompute) -> None:
    assert "is deleting" in run("cluster_delete", cloud_cluster.name).out
    assert fake_bc.clusters[cloud_cluster.cloud_cluster_id].state == "Deleting"
    cloud_cluster.refresh_from_db()
    assert cloud_cluster.state == ClusterState.DELETING


def test_it_keeps_a_cluster_with_active_jobs(
    cloud_project: Any,
    cloud_software: Any,
    cloud_cluster: Any,
    django_capture_on_commit_callbacks: Any,
    fake_bc: FakeBatchCompute,
) -> None:
    submit_cloud(
        cloud_project, cloud_software, cloud_cluster, capture=django_capture_on_commit_callbacks
    )
    with pytest.raises(CommandError, match="1 active render job"):
        run("cluster_delete", str(cloud_cluster.pk))
    assert fake_bc.clusters[cloud_cluster.cloud_cluster_id].state == "Active"
