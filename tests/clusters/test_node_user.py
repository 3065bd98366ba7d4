"""``manage.py node_user``: a cluster's render nodes get a Redis user of their own."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
import redis
from django.core.management import CommandError, call_command

from clusters.models import Cluster
from tests.nodes.conftest import needs_redis


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("node_user", *args, stdout=out)
    return out.getvalue()


@needs_redis
@pytest.mark.django_db
def test_it_sets_up_the_user_prints_its_url_once_and_removes_it(cluster: Cluster) -> None:
    printed = run(cluster.name)
    url = re.search(r"BROKER='(redis://[^']+)'", printed)
    assert url, printed
    assert f"CLUSTER={cluster.name} PRIVATE_QUEUE=1" in printed
    node = redis.Redis.from_url(url.group(1))
    assert node.ping()
    cluster.refresh_from_db()
    assert cluster.broker_user == f"renderhub-node-{cluster.name}"
    assert cluster.operations.filter(action="node-user").exists()

    again = re.search(r"BROKER='(redis://[^']+)'", run(cluster.name))
    assert again and again.group(1) != url.group(1)  # a new password; the old one is gone
    with pytest.raises(redis.exceptions.AuthenticationError):
        node.ping()

    assert "Removed the node user" in run(cluster.name, "--remove")
    cluster.refresh_from_db()
    assert cluster.broker_user == "" and cluster.broker_prefix == ""
    with pytest.raises(CommandError, match="has no node user"):
        run(cluster.name, "--remove")


@pytest.mark.django_db
def test_rules_are_printed_for_a_redis_you_manage_yourself(cluster: Cluster) -> None:
    line = run(cluster.name, "--rules")
    assert line.startswith(f"ACL SETUSER renderhub-node-{cluster.name} reset on >PASSWORD ")
    assert f"~renderhub.cluster.{cluster.name}:*" in line
    assert "(%W~renderhub.events:renderhub.events +lpush)" in line and "-@dangerous" in line


@pytest.mark.django_db
def test_without_redis_it_says_what_is_needed(cluster: Cluster, settings: Any) -> None:
    settings.CELERY_BROKER_URL = "filesystem://"
    with pytest.raises(CommandError, match="through Redis"):
        run(cluster.name)
    with pytest.raises(CommandError):
        run("no-such-cluster")
