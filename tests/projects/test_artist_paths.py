"""A mapping's paths on artists' machines: checked when saved, shown by the API."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "paths",
    ["P:\\projects\\", "p:/projects", "\\\\nas\\share\\", "/Volumes/projects/\n\n/mnt/p/", ""],
)
def test_drive_share_and_absolute_paths_are_accepted(project: Any, paths: str) -> None:
    mapping = project.mappings.get()
    mapping.artist_paths = paths
    mapping.full_clean()


@pytest.mark.parametrize(
    "path", ["projects/", "P:", "C:\\a\\..\\Windows\\", "/Volumes/../etc/", "//", "\\\\"]
)
def test_relative_or_climbing_paths_are_refused_naming_them(project: Any, path: str) -> None:
    mapping = project.mappings.get()
    mapping.artist_paths = f"/Volumes/projects/\n{path}"
    with pytest.raises(ValidationError) as exc:
        mapping.full_clean()
    assert repr(path) in exc.value.message_dict["artist_paths"][0]


def test_the_api_lists_them(bob: Any, project: Any) -> None:
    project.mappings.update(artist_paths="P:\\projects\\\n /Volumes/projects/ ")
    api = APIClient()
    api.force_authenticate(bob)
    [mapping] = api.get(f"/api/projects/{project.pk}/").json()["mappings"]
    assert mapping["artist_paths"] == ["P:\\projects\\", "/Volumes/projects/"]
