"""``manage.py cluster_create``."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management.base import CommandError

from clusters.choices import Backend, ClusterState
from clusters.models import Cluster
from tests.clusters.cloud_commands import run
from tests.fakes.batchcompute import FakeBatchCompute

pytestmark = pytest.mark.django_db


def test_it_creates_a_spot_cluster_in_batchcompute(
    cloud_image: Any, bc_settings: Any, fake_bc: FakeBatchCompute
) -> None:
    result = run(
        "cluster_create",
        "farm",
        "--image",
        "cloud-linux",
        "--instance-type",
        "bcs.a2.large",
        "--disk-type",
        "cloud_ssd",
        "--disk-size",
        "80",
        "--nodes",
        "3",
        "--spot",
        "--spot-price",
        "0.25",
    )
    cluster = Cluster.objects.get(name="farm")
    assert f"Created cluster #{cluster.pk} farm as {cluster.cloud_cluster_id}" in result.out
    assert cluster.state == ClusterState.ACTIVE and cluster.spot
    group = fake_bc.clusters[cluster.cloud_cluster_id].desc["Groups"]["group"]
    assert group["DesiredVMCount"] == 3 and group["SpotPriceLimit"] == 0.25


def test_it_creates_an_auto_cluster_without_a_cloud_cluster(
    cloud_image: Any, bc_settings: Any, fake_bc: FakeBatchCompute
) -> None:
    run(
        "cluster_create",
        "burst",
        "--image",
        "cloud-linux",
        "--instance-type",
        "bcs.a2.large",
        "--auto",
        "--max-nodes",
        "20",
    )
    cluster = Cluster.objects.get(name="burst")
    assert cluster.auto_cluster and cluster.max_nodes == 20 and not fake_bc.clusters


def test_it_explains_what_is_wrong(
    cloud_image: Any, bc_settings: Any, fake_bc: FakeBatchCompute
) -> None:
    with pytest.raises(CommandError, match=r"instance type: Choose one of bcs\.a2\.large"):
        run("cluster_create", "farm", "--image", "cloud-linux", "--instance-type", "x1")
    with pytest.raises(CommandError, match="No compute image 'nope'"):
        run("cluster_create", "farm", "--image", "nope", "--instance-type", "bcs.a2.large")
    with pytest.raises(CommandError, match="NAME and --image"):
        run("cluster_create")
    assert not Cluster.objects.filter(name="farm").exists()


def test_it_reports_a_refusal(
    cloud_image: Any, bc_settings: Any, fake_bc: FakeBatchCompute
) -> None:
    fake_bc.fail_next(1, status=403, code="QuotaExhausted", route="POST /clusters")
    with pytest.raises(CommandError, match="QuotaExhausted"):
        run("cluster_create", "farm", "--image", "cloud-linux", "--instance-type", "bcs.a2.large")
    assert Cluster.objects.get(name="farm").state == ClusterState.ERROR


def test_it_lists_the_choices(bc_settings: Any) -> None:
    out = run("cluster_create", "--choices").out
    assert "bcs.a2.large (4 CPU, 8 GB) *" in out
    assert "cloud_efficiency, cloud_ssd" in out
    assert "img-blender  Blender 3.4" in out


def test_it_creates_a_celery_cluster_too(image: Any) -> None:
    run("cluster_create", "local3", "--image", "local-linux", "--backend", "celery")
    assert Cluster.objects.get(name="local3").backend == Backend.CELERY
