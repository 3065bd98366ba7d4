"""Projects: output prefix, storage mappings (storage folder -> node path), and which applies."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError

from images.choices import Platform
from images.models import ComputeImage
from projects.models import Project, StorageMapping, validate_node_path

pytestmark = pytest.mark.django_db


@pytest.fixture
def windows_image() -> ComputeImage:
    return ComputeImage.objects.create(name="win", image_id="m-win123", platform=Platform.WINDOWS)


@pytest.fixture
def oss_settings(settings: Any) -> Any:
    """OSS credentials, so oss:// URLs resolve (nothing here talks to OSS)."""
    settings.OSS_ENDPOINT = "https://oss-cn-hangzhou.aliyuncs.com"
    settings.OSS_ACCESS_KEY_ID = "LTAIkeyid"
    settings.OSS_ACCESS_KEY_SECRET = "projects-secret"
    return settings


def errors_of(obj: Any) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as raised:
        obj.full_clean()
    return raised.value.message_dict


# --- node paths -------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/mnt/x/", "/mnt/x", "/", "/srv/render assets/", "/a.b/c"])
def test_linux_destinations_are_absolute_paths(path: str) -> None:
    validate_node_path(path, Platform.LINUX, "The destination")


@pytest.mark.parametrize(
    "path", ["mnt/x", "./mnt", "/a/../b", "/a/..", "", "G:", "D:\\out\\", "/mnt/\n"]
)
def test_linux_destinations_reject_anything_else(path: str) -> None:
    with pytest.raises(ValidationError, match="must be an absolute path on Linux"):
        validate_node_path(path, Platform.LINUX, "The destination")


@pytest.mark.parametrize("path", ["G:", "g:", "D:\\out\\", "D:\\out", "E:\\", "E:\\my renders\\a"])
def test_windows_destinations_are_drive_letters(path: str) -> None:
    validate_node_path(path, Platform.WINDOWS, "The destination")


@pytest.mark.parametrize(
    "path",
    ["/mnt", "mnt", "GG:", "G", "G:/out", "D:\\out\\..\\..\\Windows", "D:\\a|b", "G:\n"],
)
def test_windows_destinations_reject_anything_else(path: str) -> None:
    with pytest.raises(ValidationError, match="must be a drive letter"):
        validate_node_path(path, Platform.WINDOWS, "The destination")


# --- storage mappings -------------------------------------------------------------------


def test_a_mapping_inside_the_storage_root_is_valid(project: Project, storage_url: str) -> None:
    mapping = StorageMapping(project=project, source=storage_url + "assets/", destination="/mnt/a/")
    mapping.full_clean()


def test_a_mapping_source_names_a_folder(project: Project, storage_url: str) -> None:
    mapping = StorageMapping(project=project, source=storage_url + "assets", destination="/mnt/a/")
    assert errors_of(mapping) == {"source": ["The source must end with '/' (it names a folder)."]}


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("file:///etc/", "outside the local storage root"),
        ("https://example.com/assets/", "unsupported storage URL"),
        ("/srv/assets/", "is not a storage URL"),
        ("oss://Bad_Bucket/assets/", "does not name a valid bucket"),
    ],
)
def test_a_mapping_source_must_resolve(project: Project, source: str, fragment: str) -> None:
    mapping = StorageMapping(project=project, source=source, destination="/mnt/a/")
    [message] = errors_of(mapping)["source"]
    assert message.startswith("The source: ")
    assert fragment in message


def test_an_oss_source_is_valid_with_credentials(project: Project, oss_settings: Any) -> None:
    mapping = StorageMapping(project=project, source="oss://assets/shots/", destination="/mnt/a/")
    mapping.full_clean()


def test_an_oss_source_without_credentials_says_what_is_missing(
    project: Project, settings: Any
) -> None:
    settings.OSS_ENDPOINT = ""
    mapping = StorageMapping(project=project, source="oss://assets/shots/", destination="/mnt/a/")
    [message] = errors_of(mapping)["source"]
    assert "OSS_ENDPOINT" in message


def test_a_mapping_destination_follows_the_image_platform(
    project: Project, storage_url: str, windows_image: ComputeImage
) -> None:
    mapping = StorageMapping(project=project, source=storage_url + "a/", destination="G:")
    [message] = errors_of(mapping)["destination"]
    assert "absolute path on Linux" in message

    win = Project.objects.create(
        name="win-shots", image=windows_image, output_prefix=storage_url + "win/"
    )
    StorageMapping(project=win, source=storage_url + "a/", destination="G:").full_clean()
    mapping = StorageMapping(project=win, source=storage_url + "a/", destination="/mnt/a/")
    [message] = errors_of(mapping)["destination"]
    assert "drive letter" in message


def test_a_mapping_of_an_unsaved_project_is_still_checked(
    image: ComputeImage, storage_url: str
) -> None:
    # What the admin's inline does on "add": the project has no primary key yet.
    new = Project(name="fresh", image=image, output_prefix=storage_url + "out/")
    mapping = StorageMapping(project=new, source=storage_url + "a/", destination="G:")
    with pytest.raises(ValidationError) as raised:
        mapping.clean()
    assert "destination" in raised.value.message_dict


def test_a_source_is_mapped_once_per_project(project: Project) -> None:
    existing = project.mappings.get()
    duplicate = StorageMapping(project=project, source=existing.source, destination="/mnt/other/")
    assert "__all__" in errors_of(duplicate)


# --- projects ---------------------------------------------------------------------------


def test_a_project_with_a_local_output_prefix_is_valid(image: ComputeImage, storage_url) -> None:
    Project(name="ok", image=image, output_prefix=storage_url + "renders/").full_clean()


def test_an_oss_output_prefix_is_valid(image: ComputeImage, oss_settings: Any) -> None:
    Project(name="ok", image=image, output_prefix="oss://renders/out/").full_clean()


@pytest.mark.parametrize(
    ("prefix", "fragment"),
    [
        ("{root}renders", "must end with '/'"),
        ("file:///tmp/elsewhere/", "outside the local storage root"),
        ("ftp://host/out/", "unsupported storage URL"),
        ("{root}a/../../x/", ".."),
    ],
)
def test_an_output_prefix_must_be_a_storage_folder(
    image: ComputeImage, storage_url: str, prefix: str, fragment: str
) -> None:
    project = Project(name="bad", image=image, output_prefix=prefix.format(root=storage_url))
    [message] = errors_of(project)["output_prefix"]
    assert message.startswith("The output prefix")
    assert fragment in message


def test_the_node_output_dir_follows_the_image_platform(
    storage_url: str, windows_image: ComputeImage
) -> None:
    project = Project(name="win", image=windows_image, output_prefix=storage_url + "o/")
    assert "drive letter" in errors_of(project)["node_output_dir"][0]  # the Linux default
    project.node_output_dir = "D:\\renderhub\\out\\"
    project.full_clean()


# --- which mapping applies --------------------------------------------------------------


@pytest.fixture
def mapped(project: Project, storage_url: str) -> Project:
    project.mappings.all().delete()
    for source, destination in [
        ("scenes/", "/mnt/scenes/"),
        ("scenes/textures/", "/mnt/textures/"),
        ("scenes2/", "/mnt/scenes2/"),
    ]:
        StorageMapping.objects.create(
            project=project, source=storage_url + source, destination=destination
        )
    return project


@pytest.mark.parametrize(
    ("path", "destination"),
    [
        ("scenes/shot_a.blend", "/mnt/scenes/"),
        ("scenes/seq/01/shot_b.blend", "/mnt/scenes/"),
        ("scenes/textures/wood.png", "/mnt/textures/"),  # the longest source wins
        ("scenes/textures2/wood.png", "/mnt/scenes/"),  # a sibling, not inside textures/
        ("scenes2/x.blend", "/mnt/scenes2/"),  # not under scenes/
        ("scenes", "/mnt/scenes/"),  # the folder itself
        ("scenesx/y.blend", None),
        ("other/shot.blend", None),
    ],
)
def test_mapping_for_picks_the_longest_matching_source(
    mapped: Project, storage_url: str, path: str, destination: str | None
) -> None:
    mapping = mapped.mapping_for(storage_url + path)
    assert (mapping.destination if mapping else None) == destination


def test_mapping_for_ignores_other_storage(mapped: Project, oss_settings: Any) -> None:
    assert mapped.mapping_for("oss://scenes/shot_a.blend") is None
