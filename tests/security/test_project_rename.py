"""A project cannot be renamed into another project's settings (issue 17, review).

CROMWELL_PROJECT_URLS gives a project, by name, a Cromwell server of its own whose call
cache its runs read. Staff who may change their project renamed it to a name configured
there for another (before that project exists, or after it was renamed): their runs went
to the other's server and read its cache. The admin now shows the name read-only once a
project exists, except to superusers, who configure those settings anyway.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission

from projects.models import Project

pytestmark = pytest.mark.django_db


def change_form(project: Project, **overrides: Any) -> dict[str, Any]:
    mapping = project.mappings.get()
    data: dict[str, Any] = {
        "name": project.name,
        "description": project.description,
        "image": project.image_id,
        "output_prefix": project.output_prefix,
        "node_output_dir": project.node_output_dir,
        "members": [u.pk for u in project.members.all()],
        "mappings-TOTAL_FORMS": "1",
        "mappings-INITIAL_FORMS": "1",
        "mappings-MIN_NUM_FORMS": "0",
        "mappings-MAX_NUM_FORMS": "1000",
        "mappings-0-id": mapping.pk,
        "mappings-0-project": project.pk,
        "mappings-0-source": mapping.source,
        "mappings-0-destination": mapping.destination,
    }
    data.update(overrides)
    return data


def test_staff_cannot_rename_their_project_into_another_ones_cromwell_server(
    client: Any, bob: Any, project: Project, settings: Any
) -> None:
    settings.CROMWELL_PROJECT_URLS = {"genomics": "http://cromwell-genomics:8000"}
    bob.user_permissions.add(*Permission.objects.filter(codename="change_project"))
    client.force_login(bob)
    url = f"/admin/projects/project/{project.pk}/change/"

    response = client.post(url, change_form(project, name="genomics", description="renamed?"))

    assert response.status_code == 302, response.content.decode()[:2000]
    project.refresh_from_db()
    assert (project.name, project.description) == ("shots", "renamed?")  # the rest saved


def test_a_superuser_may_still_rename(client: Any, alice: Any, project: Project) -> None:
    client.force_login(alice)
    url = f"/admin/projects/project/{project.pk}/change/"

    response = client.post(url, change_form(project, name="shots-2024"))

    assert response.status_code == 302, response.content.decode()[:2000]
    project.refresh_from_db()
    assert project.name == "shots-2024"
