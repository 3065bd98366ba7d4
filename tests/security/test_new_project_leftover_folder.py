"""A user who may add projects names a new project after a deleted project's folder, to be
handed its scenes and renders through the new project's mappings: refused, nothing made."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission

from projects.models import Project

pytestmark = pytest.mark.django_db


@pytest.fixture
def lead(django_user_model: Any, settings: Any, storage_url: str) -> Any:
    settings.PROJECTS_STORAGE_URL = storage_url + "projects/"
    settings.STORAGE_ALLOWED_PREFIXES = [storage_url + "projects/"]
    user = django_user_model.objects.create_user("lead", password="pw-lead-1")
    user.user_permissions.add(Permission.objects.get(codename="add_project"))
    return user


@pytest.mark.parametrize("leftover", ["output/secret-0001.png", "scenes/deep/down/plan.blend"])
def test_a_deleted_projects_folder_is_not_handed_to_a_new_project(
    client: Any, lead: Any, image: Any, storage_root: Path, leftover: str
) -> None:
    old = storage_root / "projects" / "heist" / leftover
    old.parent.mkdir(parents=True)
    old.write_bytes(b"the old project's work")
    client.force_login(lead)
    response = client.post("/projects/new/", {"name": "heist", "image": image.pk})
    assert response.status_code == 400
    assert "holds files already" in response.content.decode()
    assert not Project.objects.filter(name="heist").exists()
    assert old.read_bytes() == b"the old project's work"


def test_an_empty_or_missing_folder_is_fine(
    client: Any, lead: Any, image: Any, storage_root: Path
) -> None:
    (storage_root / "projects" / "fresh" / "scenes").mkdir(parents=True)  # empty folders
    client.force_login(lead)
    for name in ("fresh", "brand-new"):
        response = client.post("/projects/new/", {"name": name, "image": image.pk})
        assert response.status_code == 302, response.content.decode()[:500]
    assert set(lead.renderhub_projects.values_list("name", flat=True)) == {"fresh", "brand-new"}


def test_two_requests_racing_for_one_name_make_one_project(
    client: Any, lead: Any, image: Any, monkeypatch: Any
) -> None:
    """The twin request inserts after this one's checks and before its insert: a plain
    refusal, not a server error, and no second project."""
    real_full_clean = Project.full_clean

    def then_the_twin_inserts(self: Project, *args: Any, **kwargs: Any) -> None:
        real_full_clean(self, *args, **kwargs)
        if self.pk is None and not Project.objects.filter(name=self.name).exists():
            Project.objects.create(name=self.name, image=image, output_prefix="file:///twin/")

    monkeypatch.setattr(Project, "full_clean", then_the_twin_inserts)
    client.force_login(lead)
    response = client.post("/projects/new/", {"name": "race", "image": image.pk})
    assert response.status_code == 400
    assert "exists already" in response.content.decode()
    # (The twin's insert shares this test's transaction, so it is rolled back with it.)
    assert not lead.renderhub_projects.exists()
