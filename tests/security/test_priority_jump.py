"""Attack: a member jumps other projects' jobs on a shared cluster with a high priority.

The manager gives a free slot to the highest-priority job (jobs.dispatch), so a member who
could set 100 would make every other project's jobs wait. Bob, a member of "shots", tries
it at submit (API, submit page, CLI) and afterwards (the priority endpoint, the CLI): each
is refused, and the other project's job still gets its turn. A render wrangler (the
change-render-job right) may raise it."""

from __future__ import annotations

import html
import io
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from api.services import create_token
from jobs import runner, services
from jobs.models import RenderJob, Task
from tests.conftest import make_project
from tests.jobs.conftest import make_fake_software, submit_one
from tests.workers import online_node

pytestmark = pytest.mark.django_db(transaction=True)
REFUSAL = "Priorities above 0 make other projects' jobs wait"


@pytest.fixture
def setting(project: Any, image: Any, storage_url: str, scene_url: str, cluster: Any) -> Any:
    online_node(cluster, slots=1)
    software = make_fake_software(image)
    rival = make_project("adverts", image, storage_url, "output-adverts/")
    scene = scene_url
    theirs = submit_one(rival, software, cluster, scene, frames="1-2", chunk_size=1)
    return software, scene, theirs


def api(user: Any) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {create_token(user, 'attack')[1]}")
    return client


def test_a_member_cannot_submit_above_the_ceiling(
    setting: Any, project: Any, cluster: Any, bob: Any, client: Any
) -> None:
    software, scene, _ = setting
    body = {"project": project.name, "software": software.name, "cluster": cluster.name,
            "scenes": [scene], "frames": "1-2", "priority": 100}  # fmt: skip
    response = api(bob).post("/api/jobs/", body, format="json")
    assert response.status_code == 400 and REFUSAL in response.json()["priority"][0]

    client.force_login(bob)
    form = {"project": project.pk, "software": software.pk, "cluster": cluster.pk,
            "scenes": [scene], "frames": "1-2", "nodes": "1", "priority": "100",
            "param_mode": "ok"}  # fmt: skip
    page = client.post("/submit/", form)
    assert page.status_code == 200 and REFUSAL in html.unescape(page.content.decode())

    argv = ["--project", project.name, "--software", software.name, "--cluster",
            cluster.name, "--scene", scene, "--frames", "1-2", "--priority", "100",
            "--as-user", bob.username]  # fmt: skip
    with pytest.raises(CommandError, match=REFUSAL):
        call_command("submit_render", *argv, stdout=io.StringIO())
    assert not RenderJob.objects.filter(project=project).exists()


def test_a_member_cannot_raise_it_later_and_the_other_project_keeps_its_turn(
    setting: Any, project: Any, cluster: Any, bob: Any, django_user_model: Any
) -> None:
    software, scene, theirs = setting
    mine = submit_one(project, software, cluster, scene, frames="1-2", chunk_size=1)
    response = api(bob).post(f"/api/jobs/{mine.pk}/priority/", {"priority": 100}, format="json")
    assert response.status_code == 409 and REFUSAL in response.json()["detail"]
    with pytest.raises(CommandError, match=REFUSAL):
        call_command("priority", str(mine.pk), "100", "--as-user", bob.username)
    mine.refresh_from_db()
    assert mine.priority == 0

    # One slot: the rival's first chunk took it; as it ends, bob's job gets a turn, then the
    # rival's again, not bob's twice.
    order = []
    for _ in range(4):
        [sent] = Task.objects.filter(job__cluster=cluster, state="queued", queued_at__isnull=False)
        task, _attempt = runner.claim(sent.pk, "node-1")
        for number in task.frames:
            services.frame_done(task, number, seconds=0.1, output_url="", thumbnail_url="")
        services.task_finished(task, ok=True, reason="", exit_code=0, retryable=False)
        order.append(task.job_id)
    assert order == [theirs.pk, mine.pk, theirs.pk, mine.pk]


def test_a_render_wrangler_may_raise_it(
    setting: Any, project: Any, cluster: Any, django_user_model: Any
) -> None:
    software, scene, _ = setting
    wrangler = django_user_model.objects.create_user("wrangler", password="pw-wrangler-1")
    wrangler.user_permissions.add(Permission.objects.get(codename="change_renderjob"))
    project.members.add(wrangler)
    mine = submit_one(project, software, cluster, scene, frames="1-2", chunk_size=1)
    response = api(wrangler).post(
        f"/api/jobs/{mine.pk}/priority/", {"priority": 100}, format="json"
    )
    assert response.status_code == 200, response.content
    mine.refresh_from_db()
    assert mine.priority == 100
