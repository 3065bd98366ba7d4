"""The node page: a node's state, what it renders now, the chunks it ran (every attempt,
paged, with job links and failure reasons), the agent log of its latest chunk, and the
jobs that blocked it; linked from the cluster page and the job page's node table."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import quote

import pytest
from django.utils import timezone

from clusters.choices import Backend, NodeState
from clusters.models import Cluster, ClusterNode
from jobs import runner, services
from jobs.choices import TaskState
from jobs.models import NodeBlock, RenderJob, Task, TaskAttempt
from tests.jobs.conftest import make_fake_software
from tests.web.conftest import submit

pytestmark = pytest.mark.django_db

NODE = "render@höst 1"  # odd but possible: unicode and a space


def node_url(cluster: Any, name: str = NODE) -> str:
    return f"/clusters/{cluster.pk}/nodes/{quote(name)}/"


@pytest.fixture
def renderer(image: Any) -> Any:
    return make_fake_software(image)


@pytest.fixture
def node(cluster: Any) -> ClusterNode:
    return ClusterNode.objects.create(
        cluster=cluster,
        name=NODE,
        state=NodeState.BUSY,
        last_seen=timezone.now(),
        cpu_count=16,
        concurrency=2,
        cpu_percent=97.0,
        memory_percent=41.0,
    )


def attempt(task: Task, node: str, *, ok: bool, reason: str = "", agent: str = "") -> str:
    claimed = runner.claim(task.pk, node)
    assert claimed is not None
    Task.objects.filter(pk=task.pk).update(agent_log_tail=agent)
    return services.task_finished(
        claimed[0], ok=ok, reason=reason, exit_code=0 if ok else 3, retryable=True
    )


@pytest.fixture
def job(project: Any, renderer: Any, cluster: Any, scene_url: str, node: Any) -> RenderJob:
    """Chunk 0 failed once on the node then finished there; chunk 1 renders there now."""
    job = submit(project, renderer, cluster, scene_url, frames="1-4", nodes=2)
    first, second = job.tasks.order_by("index")
    Task.objects.filter(job=job).update(state=TaskState.QUEUED)
    attempt(first, NODE, ok=False, reason="Error: Out of GPU memory", agent="agent: first\n")
    attempt(first, NODE, ok=True, agent="agent: second\n")
    assert runner.claim(second.pk, NODE) is not None
    Task.objects.filter(pk=second.pk).update(agent_log_tail="agent: rendering chunk 1 now\n")
    return job


def test_it_shows_the_node_its_running_chunk_history_blocks_and_latest_agent_log(
    client: Any, bob: Any, cluster: Any, node: Any, job: RenderJob
) -> None:
    client.force_login(bob)
    response = client.get(node_url(cluster))
    assert response.status_code == 200
    text = response.content.decode()
    assert NODE in text and "Busy" in text and "online" in text and "97%" in text
    [running] = response.context["running"]
    assert running.index == 1 and f"/jobs/{job.pk}/" in text
    history = response.context["attempts"].object_list
    assert [(a.task.index, a.number, a.state) for a in history] == [
        (1, 1, "running"),
        (0, 2, "done"),
        (0, 1, "failed"),
    ]
    assert "Error: Out of GPU memory" in text
    assert f"/jobs/{job.pk}/chunks/0/logs/?attempt=1&amp;log=agent" in text
    [block] = response.context["blocks"]
    assert block.job_id == job.pk and block.failures == 1 and "not yet" in text
    assert "agent: rendering chunk 1 now" in text  # the running chunk's live agent log


def test_the_latest_agent_log_is_the_last_attempts_when_nothing_runs(
    client: Any, bob: Any, cluster: Any, job: RenderJob
) -> None:
    second = job.tasks.get(index=1)
    Task.objects.filter(pk=second.pk).update(agent_log_tail="agent: chunk 1 ended badly\n")
    services.task_finished(second, ok=False, reason="boom", exit_code=1, retryable=False)
    client.force_login(bob)
    response = client.get(node_url(cluster))
    assert response.context["running"] == []
    assert response.context["latest_log"]["number"] == 1
    assert "agent: chunk 1 ended badly" in response.content.decode()


def test_history_is_paged(client: Any, bob: Any, cluster: Any, job: RenderJob) -> None:
    task = job.tasks.get(index=0)
    start = timezone.now() - timedelta(days=1)
    TaskAttempt.objects.bulk_create(
        TaskAttempt(
            task=task,
            job=job,
            number=10 + i,
            node=NODE,
            state="failed",
            started_at=start - timedelta(minutes=i),
            failure_reason=f"old failure {i}",
        )
        for i in range(60)
    )
    client.force_login(bob)
    first = client.get(node_url(cluster))
    assert first.context["attempts"].paginator.count == 63
    assert len(first.context["attempts"].object_list) == 50
    second = client.get(node_url(cluster) + "?page=2")
    assert "old failure 59" in second.content.decode()


def test_a_cloud_node_shows_the_chunks_that_name_it_by_ip(
    client: Any,
    alice: Any,
    image: Any,
    project: Any,
    renderer: Any,
    scene_url: str,
) -> None:
    cloud = Cluster.objects.create(
        name="bcs", image=image, backend=Backend.BATCHCOMPUTE, instance_type="ecs.c5.large"
    )
    ClusterNode.objects.create(
        cluster=cloud, name="i-bp1abc", ip_address="10.0.3.7", last_seen=timezone.now()
    )
    job = RenderJob.objects.create(
        project=project,
        software=renderer,
        cluster=cloud,
        name="cloudy",
        scene_url=scene_url,
        frame_spec="1",
        frame_count=1,
        node_count=1,
        output_url=project.output_prefix,
    )
    task = Task.objects.create(
        job=job, index=0, frames=[1], state=TaskState.RUNNING, node="10.0.3.7"
    )
    services.start_attempt(task.pk)
    client.force_login(alice)
    response = client.get(f"/clusters/{cloud.pk}/nodes/i-bp1abc/")
    assert [t.pk for t in response.context["running"]] == [task.pk]
    assert response.context["attempts"].paginator.count == 1


def test_found_by_name_or_id_and_404_otherwise(
    client: Any, bob: Any, cluster: Any, node: Any, image: Any
) -> None:
    client.force_login(bob)
    assert client.get(f"/clusters/{cluster.pk}/nodes/{node.pk}/").context["node"] == node
    other = Cluster.objects.create(name="other", image=image)
    for url in (
        node_url(cluster, "render@nobody"),
        node_url(other),  # the node is not in that cluster
        f"/clusters/999999/nodes/{quote(NODE)}/",
        f"/clusters/{cluster.pk}/nodes/../../etc/passwd/",
    ):
        assert client.get(url).status_code == 404, url


def test_the_cluster_page_the_job_page_and_system_status_link_to_it(
    client: Any, bob: Any, alice: Any, cluster: Any, node: Any, job: RenderJob
) -> None:
    client.force_login(bob)
    link = f'href="/clusters/{cluster.pk}/nodes/{quote(NODE, safe="@")}/"'
    assert link in client.get(f"/clusters/{cluster.pk}/").content.decode()
    assert link in client.get("/clusters/").content.decode()
    assert link in client.get(f"/jobs/{job.pk}/").content.decode()
    client.force_login(alice)
    assert link in client.get("/admin/status/").content.decode()  # System status
    NodeBlock.objects.all().delete()  # nothing else changes: a page without blocks says so
    assert (
        "No job you can see has blocked this node."
        in client.get(node_url(cluster)).content.decode()
    )


def test_signed_out_visitors_are_sent_to_log_in(client: Any, cluster: Any, node: Any) -> None:
    response = client.get(node_url(cluster))
    assert response.status_code == 302 and "login" in response["Location"]
