"""The Project admin: pages open, and invalid projects or mappings are refused with a reason."""

from __future__ import annotations

import html
from typing import Any

import pytest

from images.choices import Platform
from images.models import ComputeImage
from projects.models import Project, StorageMapping

pytestmark = pytest.mark.django_db

ADD_URL = "/admin/projects/project/add/"


@pytest.fixture
def admin_client(client: Any, alice: Any) -> Any:
    client.force_login(alice)
    return client


def project_form(image: ComputeImage, output_prefix: str, **overrides: Any) -> dict[str, Any]:
    """The add form's POST data with one mapping row (``mappings-0-…``)."""
    data: dict[str, Any] = {
        "name": "trailer",
        "description": "",
        "image": image.pk,
        "output_prefix": output_prefix,
        "node_output_dir": "/tmp/renderhub/output/",
        "mappings-TOTAL_FORMS": "1",
        "mappings-INITIAL_FORMS": "0",
        "mappings-MIN_NUM_FORMS": "0",
        "mappings-MAX_NUM_FORMS": "1000",
        "mappings-0-source": "",
        "mappings-0-destination": "",
    }
    data.update(overrides)
    return data


def page(response: Any) -> str:
    return html.unescape(response.content.decode())


def test_the_changelist_lists_projects_with_member_counts(
    admin_client: Any, project: Project
) -> None:
    response = admin_client.get("/admin/projects/project/")
    assert response.status_code == 200
    text = page(response)
    assert f"/admin/projects/project/{project.pk}/change/" in text
    assert project.output_prefix in text
    assert '<td class="field-member_count">1</td>' in text


def test_the_add_page_has_a_mapping_inline(admin_client: Any, image: ComputeImage) -> None:
    response = admin_client.get(ADD_URL)
    assert response.status_code == 200
    text = page(response)
    assert 'name="mappings-TOTAL_FORMS"' in text
    assert 'name="mappings-0-destination"' in text
    assert 'name="output_prefix"' in text


def test_the_change_page_shows_the_mappings(admin_client: Any, project: Project) -> None:
    response = admin_client.get(f"/admin/projects/project/{project.pk}/change/")
    assert response.status_code == 200
    text = page(response)
    mapping = project.mappings.get()
    assert f'value="{mapping.source}"' in text
    assert 'value="/mnt/scenes/"' in text


def test_adding_a_valid_project_with_a_mapping(
    admin_client: Any, image: ComputeImage, storage_url: str
) -> None:
    data = project_form(
        image,
        storage_url + "trailer/out/",
        **{"mappings-0-source": storage_url + "trailer/", "mappings-0-destination": "/mnt/t/"},
    )
    response = admin_client.post(ADD_URL, data)
    assert response.status_code == 302, page(response)
    project = Project.objects.get(name="trailer")
    assert [(m.source, m.destination) for m in project.mappings.all()] == [
        (storage_url + "trailer/", "/mnt/t/")
    ]


@pytest.mark.parametrize(
    ("prefix", "message"),
    [
        ("{root}trailer", "The output prefix must end with '/' (it names a folder)."),
        ("file:///etc/renderhub/", "outside the local storage root"),
        ("s3://bucket/out/", "unsupported storage URL"),
    ],
)
def test_a_bad_output_prefix_is_refused(
    admin_client: Any, image: ComputeImage, storage_url: str, prefix: str, message: str
) -> None:
    data = project_form(image, prefix.format(root=storage_url))
    response = admin_client.post(ADD_URL, data)
    assert response.status_code == 200
    text = page(response)
    assert message in text
    assert "Please correct the error below." in text
    assert not Project.objects.filter(name="trailer").exists()


def test_a_windows_drive_on_a_linux_image_is_refused(
    admin_client: Any, image: ComputeImage, storage_url: str
) -> None:
    data = project_form(
        image,
        storage_url + "trailer/out/",
        **{"mappings-0-source": storage_url + "trailer/", "mappings-0-destination": "G:"},
    )
    response = admin_client.post(ADD_URL, data)
    assert response.status_code == 200
    assert "The destination must be an absolute path on Linux" in page(response)
    assert not Project.objects.filter(name="trailer").exists()
    assert not StorageMapping.objects.filter(destination="G:").exists()


def test_a_linux_path_on_a_windows_image_is_refused(admin_client: Any, storage_url: str) -> None:
    windows = ComputeImage.objects.create(name="win", image_id="m-win", platform=Platform.WINDOWS)
    data = project_form(
        windows,
        storage_url + "trailer/out/",
        node_output_dir="D:\\renderhub\\",
        **{"mappings-0-source": storage_url + "trailer/", "mappings-0-destination": "/mnt/t/"},
    )
    response = admin_client.post(ADD_URL, data)
    assert response.status_code == 200
    assert "The destination must be a drive letter" in page(response)
    assert not Project.objects.filter(name="trailer").exists()


def test_a_bad_mapping_source_is_refused(
    admin_client: Any, image: ComputeImage, storage_url: str
) -> None:
    data = project_form(
        image,
        storage_url + "trailer/out/",
        **{"mappings-0-source": storage_url + "trailer", "mappings-0-destination": "/mnt/t/"},
    )
    response = admin_client.post(ADD_URL, data)
    assert response.status_code == 200
    assert "The source must end with '/'" in page(response)
    assert not Project.objects.filter(name="trailer").exists()


def test_changing_a_mapping_to_a_bad_destination_is_refused(
    admin_client: Any, project: Project
) -> None:
    mapping = project.mappings.get()
    data = project_form(
        project.image,
        project.output_prefix,
        name=project.name,
        members=[m.pk for m in project.members.all()],
        **{
            "mappings-INITIAL_FORMS": "1",
            "mappings-0-id": mapping.pk,
            "mappings-0-project": project.pk,
            "mappings-0-source": mapping.source,
            "mappings-0-destination": "mnt/relative",
        },
    )
    response = admin_client.post(f"/admin/projects/project/{project.pk}/change/", data)
    assert response.status_code == 200
    assert "The destination must be an absolute path on Linux" in page(response)
    mapping.refresh_from_db()
    assert mapping.destination == "/mnt/scenes/"
