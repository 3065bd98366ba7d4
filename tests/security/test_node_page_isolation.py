"""Attack: a member of project A opens the page of a node that also renders project B's
jobs, and tries to read B's chunks, failure reasons, agent logs, blocks and attempts.

Everyone signed in may see a cluster and its nodes (clusters are shared); what ran on a
node is shown only for jobs the viewer may see.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from django.utils import timezone

from clusters.models import ClusterNode
from jobs import runner, services
from jobs.choices import TaskState
from jobs.models import RenderJob, Task
from projects.models import Project, StorageMapping
from tests.jobs.conftest import make_fake_software
from tests.web.conftest import submit

pytestmark = pytest.mark.django_db

NODE = "render@shared"
SECRET = "B-secret: /mnt/b/unreleased_film/shot_99.blend failed"


def render_once(job: RenderJob, *, ok: bool, reason: str = "") -> None:
    task = job.tasks.order_by("index").first()
    assert task is not None
    Task.objects.filter(pk=task.pk).update(state=TaskState.QUEUED)
    claimed = runner.claim(task.pk, NODE)
    assert claimed is not None
    Task.objects.filter(pk=task.pk).update(agent_log_tail=reason or "agent: fine")
    services.task_finished(claimed[0], ok=ok, reason=reason, exit_code=None, retryable=False)


@pytest.fixture
def shared(
    project: Any, cluster: Any, image: Any, storage_url: str, storage_root: Any, charlie: Any
) -> tuple[RenderJob, RenderJob]:
    """Project A (bob's) and project B (charlie's) both rendered on one node."""
    ClusterNode.objects.create(cluster=cluster, name=NODE, last_seen=timezone.now())
    software = make_fake_software(image)
    other = Project.objects.create(
        name="B-project", image=image, output_prefix=storage_url + "b-out/"
    )
    StorageMapping.objects.create(project=other, source=storage_url + "b/", destination="/mnt/b/")
    other.members.add(charlie)
    (storage_root / "b").mkdir()
    (storage_root / "b" / "secret_shot.blend").write_bytes(b"BLENDER-b")
    (storage_root / "scenes").mkdir(exist_ok=True)
    (storage_root / "scenes" / "a_shot.blend").write_bytes(b"BLENDER-a")
    job_a = submit(project, software, cluster, storage_url + "scenes/a_shot.blend", frames="1")
    job_b = submit(other, software, cluster, storage_url + "b/secret_shot.blend", frames="1")
    render_once(job_a, ok=True)
    render_once(job_b, ok=False, reason=SECRET)
    return job_a, job_b


def test_a_member_of_a_sees_only_as_chunks_on_a_shared_node(
    client: Any, bob: Any, cluster: Any, shared: tuple[RenderJob, RenderJob]
) -> None:
    job_a, job_b = shared
    client.force_login(bob)
    response = client.get(f"/clusters/{cluster.pk}/nodes/{quote(NODE)}/")
    assert response.status_code == 200
    text = response.content.decode()
    assert [a.job_id for a in response.context["attempts"].object_list] == [job_a.pk]
    assert f"/jobs/{job_a.pk}/" in text
    assert f"/jobs/{job_b.pk}/" not in text and "secret_shot" not in text
    assert SECRET not in text and "unreleased_film" not in text  # reason, agent log, block
    assert response.context["blocks"] == []
    # Nor through the logs of B's attempt, by number.
    assert client.get(f"/jobs/{job_b.pk}/chunks/0/logs/?attempt=1").status_code == 404
    assert (
        client.get(f"/jobs/{job_b.pk}/chunks/0/logs/agent/download/?attempt=1").status_code == 404
    )


def test_the_member_of_b_sees_bs_failure_there(
    client: Any, charlie: Any, cluster: Any, shared: tuple[RenderJob, RenderJob]
) -> None:
    job_a, job_b = shared
    client.force_login(charlie)
    text = client.get(f"/clusters/{cluster.pk}/nodes/{quote(NODE)}/").content.decode()
    assert SECRET in text and f"/jobs/{job_b.pk}/" in text
    assert f"/jobs/{job_a.pk}/" not in text and "a_shot" not in text


def test_a_user_of_no_project_sees_the_machine_but_no_work(
    client: Any, django_user_model: Any, cluster: Any, shared: tuple[RenderJob, RenderJob]
) -> None:
    nobody = django_user_model.objects.create_user("dora", password="pw-dora-1")  # no staff
    client.force_login(nobody)
    response = client.get(f"/clusters/{cluster.pk}/nodes/{quote(NODE)}/")
    assert response.status_code == 200 and NODE in response.content.decode()
    assert response.context["attempts"].paginator.count == 0
    assert response.context["running"] == [] and response.context["latest_log"] is None
    assert SECRET not in response.content.decode()
