"""Attack: a render node's broker credential, stolen, used to read what is not its own.

A cluster's nodes connect as the cluster's Redis user (``manage.py node_user``). With that
credential a node renders its cluster's jobs (the whole path: queue, claims, events,
answers); every other key is refused: the events queue (LPUSH only), other clusters'
queues and answers, kombu's shared unacked messages, and the commands that list keys or
watch the server. Performed against the real Redis with the real credential.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from clusters import node_users
from clusters.models import Cluster
from jobs.choices import FrameState, JobState
from tests.jobs.conftest import submit_one
from tests.nodes.conftest import needs_redis
from tests.workers import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), needs_redis]


@pytest.fixture
def node_user(cluster: Cluster) -> Iterator[node_users.NodeUser]:
    user = node_users.create_node_user(cluster)
    try:
        yield user
    finally:
        with contextlib.suppress(node_users.NodeUserError):
            node_users.remove_node_user(Cluster.objects.get(pk=cluster.pk))


def refused(client: redis.Redis, *command: Any) -> bool:
    try:
        client.execute_command(*command)
    except redis.exceptions.NoPermissionError:
        return True
    return False


def test_a_cluster_user_renders_its_jobs_and_reads_nothing_else(
    project, fake_software, cluster, scene_url, image, nodes, node_user, settings
) -> None:
    other = Cluster.objects.create(name=f"other-{uuid.uuid4().hex[:6]}", image=image)
    nodes.start("a", cluster, broker=node_user.broker_url)
    job = submit_one(project, fake_software, cluster, scene_url, frames="1-4", nodes=2)
    wait_for(job, timeout=90, explain=lambda: nodes.log("a")[-4000:])
    assert job.state == JobState.FINISHED, job.failure_reason
    assert job.frame_set.filter(state=FrameState.DONE).count() == 4

    stolen = redis.Redis.from_url(node_user.broker_url)
    assert stolen.ping()
    # Its own keys: yes.
    assert not refused(stolen, "LLEN", f"{cluster.broker_prefix}{cluster.queue}")
    # The events queue: publish only (no reading other nodes' events or claims, no
    # dropping them).
    events = "renderhub.events:renderhub.events"
    mine = f"{cluster.broker_prefix}x"
    for command in (
        ("LRANGE", 0, -1), ("RPOP",), ("LINDEX", 0), ("DUMP",), ("LLEN",), ("DEL",),
        ("LTRIM", 0, 0), ("EXPIRE", 1), ("RENAME", "x"), ("LSET", 0, "x"), ("LREM", 0, "x"),
        ("LMOVE", mine, "LEFT", "LEFT"),
    ):  # fmt: skip
        assert refused(stolen, command[0], events, *command[1:]), command
    # Publishing (LPUSH) is what it may do there: asked of Redis without doing it.
    admin = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    assert admin.execute_command("ACL", "DRYRUN", node_user.name, "LPUSH", events, "x") == b"OK"
    admin.close()
    # Other clusters' queues (their tickets), with or without a prefix, and their answers.
    assert refused(stolen, "LLEN", other.queue)
    assert refused(stolen, "RPOP", f"renderhub.cluster.{other.name}:{other.queue}")
    assert refused(stolen, "RPOP", f"renderhub.events:renderhub.node.{other.name}.n.x")
    # The manager's own queue, kombu's shared unacked messages and bindings.
    assert refused(stolen, "LLEN", "renderhub")
    assert refused(stolen, "HGETALL", "unacked")
    assert refused(stolen, "SMEMBERS", "_kombu.binding.renderhub")
    # Listing keys, watching the server, changing it.
    for command in (("KEYS", "*"), ("SCAN", 0), ("INFO",), ("CONFIG", "GET", "*"),
                    ("ACL", "LIST"), ("FLUSHALL",), ("MONITOR",), ("CLIENT", "LIST")):  # fmt: skip
        assert refused(stolen, *command), command
    stolen.close()


def test_a_removed_user_no_longer_connects_and_the_queue_comes_back(
    cluster: Cluster, node_user: node_users.NodeUser
) -> None:
    assert cluster.broker_prefix == f"renderhub.cluster.{cluster.name}:"
    assert node_users.remove_node_user(cluster)
    assert cluster.broker_prefix == ""
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis.from_url(node_user.broker_url).ping()
