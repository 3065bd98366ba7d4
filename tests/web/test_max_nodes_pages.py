"""``max_nodes`` from the submit page, the API and manage.py submit_render (the rule is
tests/jobs/test_max_nodes.py)."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command

from jobs.models import RenderJob

pytestmark = pytest.mark.django_db


def test_the_page_the_api_and_the_cli_set_max_nodes(
    as_bob: Any, bob: Any, project: Any, fake_software: Any, cluster: Any, scene_url: str
) -> None:
    page = as_bob.get(f"/submit/?project={project.pk}").content.decode()
    assert 'name="max_nodes"' in page and "At most nodes at once" in page
    data = {
        "project": project.pk,
        "software": fake_software.pk,
        "cluster": cluster.pk,
        "scenes": [scene_url],
        "frames": "1-4",
        "chunk_size": "1",
        "priority": "0",
        "max_nodes": "1",
    }
    as_bob.post("/submit/", data)
    job = RenderJob.objects.get()
    assert job.max_nodes == 1
    assert "at most 1 at once" in as_bob.get(f"/jobs/{job.pk}/").content.decode()

    from rest_framework.test import APIClient

    from api.services import create_token

    _token, key = create_token(bob, "tests")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    payload = {
        "project": "shots",
        "software": fake_software.pk,
        "cluster": cluster.name,
        "scenes": [scene_url],
        "frames": "1-2",
        "max_nodes": 2,
    }
    response = api.post("/api/jobs/", payload, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["jobs"][0]["max_nodes"] == 2

    args = ["--project", "shots", "--software", fake_software.name, "--cluster", cluster.name]
    call_command(
        "submit_render", *args, "--scene", scene_url, "--frames", "1-2", "--max-nodes", "3",
        stdout=StringIO(),
    )  # fmt: skip
    assert RenderJob.objects.latest("pk").max_nodes == 3
