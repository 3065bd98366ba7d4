from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from clusters.models import ClusterNode
from jobs import runner, services
from jobs.choices import TaskState
from jobs.models import NodeBlock

pytestmark = pytest.mark.django_db


@pytest.fixture
def job(project, fake_software, cluster, scene_url, settings):
    settings.RENDER_BLOCKLIST_AFTER = 2
    [job] = services.submit_render(
        services.RenderRequest(
            project=project, software=fake_software, cluster=cluster,
            scenes=[scene_url], frames="1-4", nodes=1,
        )
    )  # fmt: skip
    return job


def online(cluster, name: str, seconds_ago: int = 0) -> None:
    ClusterNode.objects.create(
        cluster=cluster, name=name, last_seen=timezone.now() - timedelta(seconds=seconds_ago)
    )


def test_a_node_is_blocked_only_after_the_configured_failures(job) -> None:
    NodeBlock.objects.create(job=job, node="a@host", failures=1)
    assert not services.is_blocked(job.pk, "a@host")
    NodeBlock.objects.filter(job=job).update(failures=2)
    assert services.is_blocked(job.pk, "a@host")
    assert not services.is_blocked(job.pk, "b@host")


def test_a_blocked_node_passes_the_chunk_to_another_online_node(job, cluster) -> None:
    online(cluster, "a@host")
    online(cluster, "b@host")
    NodeBlock.objects.create(job=job, node="a@host", failures=2)
    task = job.tasks.get()
    assert runner.pass_on_if_blocked(task.pk, "a@host") == "passed on"
    task.refresh_from_db()
    assert task.state == TaskState.QUEUED and task.attempts == 0


def test_when_every_online_node_failed_the_job_the_node_takes_it_anyway(job, cluster) -> None:
    """The job's fault, not the nodes': no blocklist note, the renderer's error will tell."""
    online(cluster, "a@host")
    online(cluster, "b@host", seconds_ago=3600)  # offline nodes don't count
    NodeBlock.objects.create(job=job, node="a@host", failures=2, last_reason="boom")
    task = job.tasks.get()
    assert runner.pass_on_if_blocked(task.pk, "a@host") is None
    task.refresh_from_db()
    assert task.state == TaskState.QUEUED


def test_retry_clears_the_jobs_node_blocks(job) -> None:
    NodeBlock.objects.create(job=job, node="a@host", failures=2, last_reason="boom")
    services.cancel_job(job)
    job.refresh_from_db()
    assert services.retry_job(job) == 1
    assert not job.node_blocks.exists()


def test_an_unblocked_node_just_claims(job, cluster) -> None:
    task = job.tasks.get()
    assert runner.pass_on_if_blocked(task.pk, "a@host") is None
