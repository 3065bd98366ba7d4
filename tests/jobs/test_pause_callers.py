"""Pause, resume and cluster suspension from the admin, the staff pages and the API: thin
callers of jobs.scheduling and clusters.suspension (the rules are tests/jobs/test_pause.py)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.messages import get_messages

from jobs import services
from jobs.choices import TaskState
from jobs.models import RenderJob

pytestmark = pytest.mark.django_db


@pytest.fixture
def job(project: Any, blender_software: Any, cluster: Any, scene_url: str) -> RenderJob:
    [job] = services.submit_render(
        services.RenderRequest(
            project=project,
            software=blender_software,
            cluster=cluster,
            scenes=[scene_url],
            frames="1-4",
            nodes=2,
        )
    )
    return job


@pytest.fixture
def token_client() -> Any:
    from rest_framework.test import APIClient

    from api.services import create_token

    def make(user: Any) -> APIClient:
        _token, key = create_token(user, "tests")
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        return client

    return make


def messages_of(response: Any) -> list[str]:
    """What the last action said (messages not yet shown pile up in the session)."""
    return [str(m) for m in get_messages(response.wsgi_request)][-1:]


def test_the_admin_pauses_now_and_resumes(client: Any, alice: Any, job: RenderJob) -> None:
    client.force_login(alice)
    url = "/admin/jobs/renderjob/"
    job.tasks.filter(index=0).update(state=TaskState.RUNNING, attempts=1, node="node-1")
    services.task_started(job.tasks.get(index=0))  # the task row as a claim leaves it
    response = client.post(url, {"action": "pause_jobs_now", "_selected_action": [job.pk]})
    assert messages_of(response) == [
        f"Paused job #{job.pk}: 1 running chunk stopped and queued again."
    ]
    assert job.tasks.get(index=0).state == TaskState.QUEUED
    response = client.post(url, {"action": "resume_jobs", "_selected_action": [job.pk]})
    assert messages_of(response) == [f"Resumed job #{job.pk}: its chunks may start again."]
    response = client.post(url, {"action": "pause_jobs", "_selected_action": [job.pk]})
    assert "running chunks finish" in messages_of(response)[0]
    job.refresh_from_db()
    assert job.is_paused


def test_the_job_page_offers_pause_then_resume(client: Any, bob: Any, job: RenderJob) -> None:
    client.force_login(bob)
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert f'action="/jobs/{job.pk}/pause/"' in page and "Pause now" in page
    response = client.post(f"/jobs/{job.pk}/pause/", follow=True)
    page = response.content.decode()
    assert f"Paused job #{job.pk}" in page
    assert '<span class="badge s-paused">Paused</span>' in page
    assert f'action="/jobs/{job.pk}/resume/"' in page
    response = client.post(f"/jobs/{job.pk}/resume/", follow=True)
    assert f"Resumed job #{job.pk}" in response.content.decode()
    job.refresh_from_db()
    assert not job.is_paused


def test_an_outsider_cannot_pause_a_job(client: Any, charlie: Any, job: RenderJob) -> None:
    client.force_login(charlie)
    assert client.post(f"/jobs/{job.pk}/pause/").status_code == 404
    job.refresh_from_db()
    assert not job.is_paused


def test_the_api_pauses_now_and_resumes(token_client: Any, bob: Any, job: RenderJob) -> None:
    client = token_client(bob)
    response = client.post(f"/api/jobs/{job.pk}/pause/", {"now": True}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["detail"] == f"Paused job #{job.pk}: 0 running chunks stopped and queued again."
    assert body["job"]["paused_at"] is not None
    assert body["job"]["links"]["resume"].endswith(f"/api/jobs/{job.pk}/resume/")
    assert client.post(f"/api/jobs/{job.pk}/resume/").json()["job"]["paused_at"] is None
    again = client.post(f"/api/jobs/{job.pk}/resume/")
    assert again.status_code == 409 and again.json()["detail"] == f"Job #{job.pk} is not paused."


def test_the_cluster_page_and_the_api_suspend_and_resume(
    client: Any, alice: Any, bob: Any, cluster: Any, token_client: Any
) -> None:
    client.force_login(bob)  # a member, without the change-cluster right
    assert client.post(f"/clusters/{cluster.pk}/suspend/").status_code == 403
    assert "Suspend cluster" not in client.get(f"/clusters/{cluster.pk}/").content.decode()
    client.force_login(alice)
    response = client.post(f"/clusters/{cluster.pk}/suspend/", follow=True)
    page = response.content.decode()
    assert f"Suspended cluster {cluster.name}: its nodes take no new chunks." in page
    assert "Resume cluster" in page
    cluster.refresh_from_db()
    assert cluster.suspended_at is not None

    api = token_client(alice)
    assert api.post(f"/api/clusters/{cluster.pk}/suspend/").status_code == 409
    resumed = api.post(f"/api/clusters/{cluster.pk}/resume/")
    assert resumed.status_code == 200 and resumed.json()["suspended_at"] is None
    assert token_client(bob).post(f"/api/clusters/{cluster.pk}/suspend/").status_code == 403


def test_the_cluster_admin_suspends_and_resumes(client: Any, alice: Any, cluster: Any) -> None:
    client.force_login(alice)
    url = "/admin/clusters/cluster/"
    response = client.post(url, {"action": "suspend_clusters", "_selected_action": [cluster.pk]})
    assert messages_of(response) == [
        f"Suspended cluster {cluster.name}: its nodes take no new chunks."
    ]
    response = client.post(url, {"action": "resume_clusters", "_selected_action": [cluster.pk]})
    assert messages_of(response) == [
        f"Resumed cluster {cluster.name}: its nodes take chunks again."
    ]
