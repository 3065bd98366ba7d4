"""``manage.py cluster_suspend ID [--resume]``."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management.base import CommandError

from tests.clusters.cloud_commands import run

pytestmark = pytest.mark.django_db


def test_it_suspends_and_resumes_by_name_or_id(cluster: Any) -> None:
    out = run("cluster_suspend", cluster.name).out
    assert out == f"Suspended cluster {cluster.name}: its nodes take no new chunks.\n"
    cluster.refresh_from_db()
    assert cluster.suspended_at is not None
    assert run("cluster_suspend", cluster.name).out == (
        f"Cluster {cluster.name} is suspended already.\n"
    )
    out = run("cluster_suspend", str(cluster.pk), "--resume").out
    assert out == f"Resumed cluster {cluster.name}: its nodes take chunks again.\n"
    cluster.refresh_from_db()
    assert cluster.suspended_at is None
    assert list(cluster.operations.values_list("action", flat=True).order_by("at")) == [
        "suspend",
        "resume",
    ]


def test_it_refuses_unknown_clusters(db: None) -> None:
    with pytest.raises(CommandError, match="No cluster 'nope'"):
        run("cluster_suspend", "nope")
