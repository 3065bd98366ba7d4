"""``manage.py clusters``."""

from __future__ import annotations

from typing import Any

import pytest

from tests.clusters.cloud_commands import run

pytestmark = pytest.mark.django_db


def test_it_lists_clusters_with_their_nodes(cloud_cluster: Any, cluster: Any) -> None:
    out = run("clusters", "--sync").out
    header, *rows = out.splitlines()
    assert header.split()[:5] == ["ID", "NAME", "BACKEND", "MODE", "STATE"]
    cloud_row = next(r for r in rows if cloud_cluster.name in r)
    assert "on-demand" in cloud_row and "2/2" in cloud_row and "active" in cloud_row
    assert cloud_cluster.cloud_cluster_id in cloud_row
    assert any(cluster.name in r and "celery" in r for r in rows)


def test_it_says_when_there_are_none(db: None) -> None:
    assert run("clusters").out == "No clusters.\n"
