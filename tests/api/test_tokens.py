"""/api/tokens/: people manage their own keys; a project token sees one project only."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from api import services
from api.models import ApiToken
from projects.models import Project

pytestmark = pytest.mark.django_db


def session(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def test_a_logged_in_user_creates_a_token_and_sees_the_key_once(bob) -> None:
    client = session(bob)
    created = client.post("/api/tokens/", {"name": "render farm CI"}, format="json")
    assert created.status_code == 201
    key = created.json()["key"]
    listed = client.get("/api/tokens/").json()["results"]
    assert [t["name"] for t in listed] == ["render farm CI"]
    assert "key" not in listed[0] and key not in str(listed)
    assert "key" not in client.get(f"/api/tokens/{listed[0]['id']}/").json()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert api.get("/api/projects/").status_code == 200


def test_a_token_cannot_create_more_tokens(bob, token_client) -> None:
    response = token_client(bob).post("/api/tokens/", {"name": "more"}, format="json")
    assert response.status_code == 403
    assert ApiToken.objects.filter(user=bob).count() == 1


def test_deleting_revokes_and_other_peoples_tokens_are_not_found(bob, charlie) -> None:
    token, _key = services.create_token(bob, "mine")
    assert session(charlie).delete(f"/api/tokens/{token.pk}/").status_code == 404
    assert session(charlie).get(f"/api/tokens/{token.pk}/").status_code == 404
    assert session(bob).delete(f"/api/tokens/{token.pk}/").status_code == 204
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert ApiToken.objects.filter(pk=token.pk).exists()  # kept for the record


def test_a_project_token_sees_only_that_project(alice, project, job, image, token_client) -> None:
    other = Project.objects.create(name="ads", image=image, output_prefix=project.output_prefix)
    scoped = token_client(alice, project=other)
    assert [p["name"] for p in scoped.get("/api/projects/").json()["results"]] == ["ads"]
    assert scoped.get(f"/api/projects/{project.pk}/").status_code == 404
    assert scoped.get(f"/api/jobs/{job.pk}/").status_code == 404
    assert scoped.get("/api/jobs/").json()["results"] == []
    everything = token_client(alice)
    assert everything.get(f"/api/jobs/{job.pk}/").status_code == 200


def test_a_project_token_needs_membership(charlie, project) -> None:
    response = session(charlie).post(
        "/api/tokens/", {"name": "x", "project": "shots"}, format="json"
    )
    assert response.status_code == 400
    assert "There is no project 'shots'" in response.json()["project"][0]
    ok = session(charlie).post("/api/tokens/", {"name": "x"}, format="json")
    assert ok.status_code == 201
