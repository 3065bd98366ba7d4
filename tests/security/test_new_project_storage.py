"""A user who may add projects names a new project after another project's folder, to be
handed that project's scenes and outputs through the new project's mapping: refused."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission

from projects.models import Project

pytestmark = pytest.mark.django_db


def test_a_project_named_after_another_projects_folder_is_refused(
    client: Any, django_user_model: Any, image: Any, project: Any, settings: Any, storage_url: str
) -> None:
    # shots keeps its scenes in <root>/scenes/ and its outputs in <root>/output/.
    settings.PROJECTS_STORAGE_URL = storage_url
    settings.STORAGE_ALLOWED_PREFIXES = [storage_url]
    lead = django_user_model.objects.create_user("lead", password="pw-lead-1")
    lead.user_permissions.add(Permission.objects.get(codename="add_project"))
    client.force_login(lead)
    for name in ("scenes", "output"):
        response = client.post("/projects/new/", {"name": name, "image": image.pk})
        assert response.status_code == 400
        assert "overlaps the storage of project shots" in response.content.decode()
    assert list(Project.objects.values_list("name", flat=True)) == ["shots"]
    assert not lead.renderhub_projects.exists()
