"""The New project page: a user with "Can add project" and no staff flag starts a project
in its own folder and can browse (and upload to) its scenes at once."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission

from projects.models import Project

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

PLAIN_STATIC = "django.contrib.staticfiles.storage.StaticFilesStorage"


@pytest.fixture(autouse=True)
def _static(settings: Any) -> None:
    settings.STORAGES = {**settings.STORAGES, "staticfiles": {"BACKEND": PLAIN_STATIC}}


@pytest.fixture
def lead(django_user_model: Any) -> Any:
    user = django_user_model.objects.create_user("lead", password="pw-lead-1")
    user.user_permissions.add(Permission.objects.get(codename="add_project"))
    return user


@pytest.fixture
def projects_root(settings: Any, storage_url: str) -> str:
    root = storage_url + "projects/"
    settings.PROJECTS_STORAGE_URL = root
    settings.STORAGE_ALLOWED_PREFIXES = [root]
    return root


def test_a_lead_creates_a_project_in_its_own_folder(
    client: Any, lead: Any, image: Any, projects_root: str
) -> None:
    client.force_login(lead)
    page = client.get("/projects/new/").content.decode()
    assert projects_root in page  # where it will live is said up front
    response = client.post("/projects/new/", {"name": "spot-42", "image": image.pk})
    project = Project.objects.get(name="spot-42")
    assert response.status_code == 302
    assert response["Location"] == f"/projects/{project.pk}/browse/"
    assert project.output_prefix == projects_root + "spot-42/output/"
    [mapping] = project.mappings.all()
    assert (mapping.source, mapping.destination, mapping.writable) == (
        projects_root + "spot-42/scenes/",
        "/mnt/scenes/",
        True,
    )
    assert list(project.members.all()) == [lead]
    assert client.get(response["Location"]).status_code == 200


def test_without_the_permission_the_page_is_refused(client: Any, bob: Any, image: Any) -> None:
    client.force_login(bob)
    assert client.get("/projects/new/").status_code == 403
    assert client.post("/projects/new/", {"name": "x", "image": image.pk}).status_code == 403
    assert not Project.objects.filter(name="x").exists()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("../etc", "Enter a valid “slug”"),
        ("spot 42", "Enter a valid “slug”"),
        ("shots", "A project named shots exists already."),
    ],
)
def test_bad_or_taken_names_are_refused(
    client: Any, lead: Any, image: Any, projects_root: str, project: Any, name: str, message: str
) -> None:
    client.force_login(lead)
    response = client.post("/projects/new/", {"name": name, "image": image.pk})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert Project.objects.count() == 1


def test_outside_the_allowed_storage_only_a_superuser_may_create(
    client: Any, lead: Any, alice: Any, image: Any, settings: Any, storage_url: str
) -> None:
    settings.PROJECTS_STORAGE_URL = storage_url + "projects/"
    settings.STORAGE_ALLOWED_PREFIXES = []
    client.force_login(lead)
    refused = client.post("/projects/new/", {"name": "spot-42", "image": image.pk})
    assert (
        refused.status_code == 400 and "can only be set by a superuser" in refused.content.decode()
    )
    client.force_login(alice)
    assert client.post("/projects/new/", {"name": "spot-42", "image": image.pk}).status_code == 302


def test_the_dashboard_lists_your_projects_and_offers_a_new_one(
    client: Any, lead: Any, bob: Any, project: Any
) -> None:
    client.force_login(lead)
    page = client.get("/").content.decode()
    assert "You are not a member of any project yet" in page and "/projects/new/" in page
    client.force_login(bob)  # a member of shots, without the permission
    page = client.get("/").content.decode()
    assert f"/projects/{project.pk}/browse/" in page and "/projects/new/" not in page
