"""Finding 8 of issue 11: mapping editors reached all storage.

Eve is staff with every project and mapping permission and a member of project "shots".
Through the real admin change form she tries to map the storage root, another project's
folder and another bucket into her project, to point its outputs there, to make a
read-only mapping writable and to add members. Each is refused with a message saying who
may; only superusers (and, within ``STORAGE_ALLOWED_PREFIXES``, staff) choose storage.
"""

from __future__ import annotations

import html
from typing import Any

import pytest
from django.contrib.auth.models import Permission

from projects.models import Project, StorageMapping

pytestmark = pytest.mark.django_db

SUPERUSERS_ONLY = "can only be set by a superuser"


@pytest.fixture
def eve(client: Any, django_user_model: Any, project: Project) -> Any:
    user = django_user_model.objects.create_user("eve", password="pw-eve-1", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="projects"))
    user.user_permissions.remove(Permission.objects.get(codename="manage_members"))
    project.members.add(user)
    client.force_login(user)
    return user


@pytest.fixture
def other(project: Project, storage_url: str) -> Project:
    """Another team's project, with its own output folder."""
    return Project.objects.create(
        name="other-team", image=project.image, output_prefix=storage_url + "projects/other/out/"
    )


def change_form(project: Project, **overrides: Any) -> dict[str, Any]:
    """The change form as the admin renders it, with the project's mappings and one empty
    row (``mappings-N-…``) for a new mapping."""
    mappings = list(project.mappings.all())
    data: dict[str, Any] = {
        "name": project.name,
        "description": project.description,
        "image": project.image_id,
        "output_prefix": project.output_prefix,
        "node_output_dir": project.node_output_dir,
        "members": [u.pk for u in project.members.all()],
        "mappings-TOTAL_FORMS": str(len(mappings) + 1),
        "mappings-INITIAL_FORMS": str(len(mappings)),
        "mappings-MIN_NUM_FORMS": "0",
        "mappings-MAX_NUM_FORMS": "1000",
    }
    for i, m in enumerate(mappings):
        data.update(
            {
                f"mappings-{i}-id": m.pk,
                f"mappings-{i}-project": project.pk,
                f"mappings-{i}-source": m.source,
                f"mappings-{i}-destination": m.destination,
            }
        )
        if m.writable:
            data[f"mappings-{i}-writable"] = "on"
    new = len(mappings)
    data.update({f"mappings-{new}-source": "", f"mappings-{new}-destination": ""})
    data.update(overrides)
    return data


def new_mapping(project: Project, source: str, destination: str = "/mnt/all/") -> dict[str, str]:
    row = project.mappings.count()
    return {f"mappings-{row}-source": source, f"mappings-{row}-destination": destination}


def post(client: Any, project: Project, data: dict[str, Any]) -> tuple[int, str]:
    response = client.post(f"/admin/projects/project/{project.pk}/change/", data)
    return response.status_code, html.unescape(response.content.decode())


def sources(project: Project) -> list[str]:
    return list(project.mappings.values_list("source", flat=True))


# --- with no allow-list (the default): superusers only -------------------------------------


def test_mapping_the_storage_root_is_refused(
    client: Any, eve: Any, project: Project, storage_url: str
) -> None:
    before = sources(project)
    status, text = post(client, project, change_form(project, **new_mapping(project, storage_url)))
    assert status == 200
    assert f"The source {SUPERUSERS_ONLY}" in text and "STORAGE_ALLOWED_PREFIXES" in text
    assert sources(project) == before


def test_pointing_outputs_at_another_project_or_bucket_is_refused(
    client: Any, eve: Any, project: Project, other: Project
) -> None:
    for prefix in (other.output_prefix, "oss://someone-elses-bucket/"):
        status, text = post(client, project, change_form(project, output_prefix=prefix))
        assert status == 200 and f"The output prefix {SUPERUSERS_ONLY}" in text
    project.refresh_from_db()
    assert project.output_prefix.endswith("/output/")


def test_making_a_mapping_writable_is_refused(client: Any, eve: Any, project: Project) -> None:
    status, text = post(client, project, change_form(project, **{"mappings-0-writable": "on"}))
    assert status == 200 and f"The source {SUPERUSERS_ONLY}" in text
    assert not project.mappings.get().writable


def test_adding_members_needs_the_permission(
    client: Any, eve: Any, charlie: Any, project: Project
) -> None:
    members = [u.pk for u in project.members.all()]
    status, text = post(client, project, change_form(project, members=[*members, charlie.pk]))
    assert status == 200
    assert "Only superusers and users with the “Can add and remove project members”" in text
    assert not project.members.filter(pk=charlie.pk).exists()

    eve.user_permissions.add(Permission.objects.get(codename="manage_members"))
    status, text = post(client, project, change_form(project, members=[*members, charlie.pk]))
    assert status == 302, text
    assert project.members.filter(pk=charlie.pk).exists()


def test_staff_still_edit_the_rest_of_a_project_a_superuser_set_up(
    client: Any, eve: Any, project: Project
) -> None:
    status, text = post(client, project, change_form(project, description="Trailer shots"))
    assert status == 302, text
    project.refresh_from_db()
    assert project.description == "Trailer shots"


def test_superusers_map_what_they_want(
    client: Any, alice: Any, project: Project, storage_url: str
) -> None:
    client.force_login(alice)
    status, text = post(client, project, change_form(project, **new_mapping(project, storage_url)))
    assert status == 302, text
    assert storage_url in sources(project)


# --- with an allow-list: inside it, and away from other projects ---------------------------


@pytest.fixture
def allowed(settings: Any, storage_url: str) -> str:
    settings.STORAGE_ALLOWED_PREFIXES = [storage_url + "projects/"]
    return storage_url + "projects/"


def test_staff_map_folders_inside_the_allow_list(
    client: Any, eve: Any, project: Project, allowed: str
) -> None:
    source = allowed + "shots/assets/"
    status, text = post(client, project, change_form(project, **new_mapping(project, source)))
    assert status == 302, text
    assert source in sources(project)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("{root}", "is outside the storage open to staff: use a folder inside {allowed}"),
        ("{root}projects/", "overlaps the storage of project other-team"),
        ("{root}projects/other/", "overlaps the storage of project other-team"),
        ("{root}projects/other/out/frames/", "overlaps the storage of project other-team"),
    ],
)
def test_staff_cannot_leave_the_allow_list_or_reach_another_project(
    client: Any,
    eve: Any,
    project: Project,
    other: Project,
    allowed: str,
    storage_url: str,
    target: str,
    message: str,
) -> None:
    source = target.format(root=storage_url)
    expected = message.format(allowed=allowed)
    status, text = post(client, project, change_form(project, **new_mapping(project, source)))
    assert status == 200 and f"The source {source} {expected}" in text
    status, text = post(client, project, change_form(project, output_prefix=source))
    assert status == 200 and f"The output prefix {source} {expected}" in text
    assert source not in sources(project)
    assert not StorageMapping.objects.filter(source=source).exists()
