"""A file where a folder is expected, and the other way round. Before the fix a member
could start an upload into "sub/x.blend", then upload a file named "sub": the first
upload's note then pointed through a file, and every later upload start (anyone's, any
project's) failed with a server error while cleaning stale uploads. Now each clash is a
clear refusal and never stops other uploads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from tests.projects.upload_helpers import put, start, upload

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _own_registry(settings: Any, tmp_path: Path) -> None:
    settings.VAR_DIR = tmp_path


@pytest.fixture
def scenes(project: Any, charlie: Any, storage_root: Path) -> str:
    project.mappings.update(writable=True)
    project.members.add(charlie)
    (storage_root / "scenes").mkdir(parents=True, exist_ok=True)
    return str(project.mappings.get().source)


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_file_named_like_a_later_folder_does_not_stop_everyone_elses_uploads(
    project: Any, scenes: str, bob: Any, charlie: Any, storage_root: Path
) -> None:
    as_bob = _client(bob)
    token = start(as_bob, project, scenes, "sub/x.blend", 4).json()["upload"]
    assert upload(as_bob, project, scenes, "sub", b"a file").status_code == 200
    # bob's first upload can go no further, and says why.
    response = put(as_bob, project, token, 0, b"late")
    assert response.status_code == 409 and "sub is a file" in response.json()["error"]
    # charlie, and bob himself, still upload.
    assert upload(_client(charlie), project, scenes, "mine.blend", b"ok").status_code == 200
    assert upload(as_bob, project, scenes, "other.blend", b"ok").status_code == 200
    assert (storage_root / "scenes" / "mine.blend").read_bytes() == b"ok"


@pytest.mark.parametrize("path", ["a.blend/x.png", "a.blend/deep/x.png"])
def test_a_path_through_a_file_is_refused_at_the_start(
    project: Any, scenes: str, bob: Any, storage_root: Path, path: str
) -> None:
    (storage_root / "scenes" / "a.blend").write_bytes(b"scene")
    response = start(_client(bob), project, scenes, path, 4)
    assert response.status_code == 409 and "is a file" in response.json()["error"]
    assert (storage_root / "scenes" / "a.blend").read_bytes() == b"scene"


def test_a_file_named_like_a_folder_is_refused(
    project: Any, scenes: str, bob: Any, storage_root: Path
) -> None:
    (storage_root / "scenes" / "textures").mkdir()
    (storage_root / "scenes" / "textures" / "wood.png").write_bytes(b"png")
    response = start(_client(bob), project, scenes, "textures", 4)
    assert response.status_code == 409 and "a folder has that name" in response.json()["error"]
    assert (storage_root / "scenes" / "textures" / "wood.png").read_bytes() == b"png"
