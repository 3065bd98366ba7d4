"""Attacks on uploads into local storage: each is refused and writes nothing anywhere.

bob is a member of "shots" (its mapping scenes/ is writable); charlie is a member of another
project, "ads", whose folder is ads/ in the same storage root.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from projects.models import Project, StorageMapping
from tests.projects.upload_helpers import complete, put, start, upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def scenes(project: Any) -> str:
    mapping = project.mappings.get()
    mapping.writable = True
    mapping.save()
    return str(mapping.source)


@pytest.fixture
def ads(image: Any, storage_url: str, charlie: Any) -> Project:
    other = Project.objects.create(name="ads", image=image, output_prefix=storage_url + "ads-out/")
    StorageMapping.objects.create(
        project=other, source=storage_url + "ads/", destination="/mnt/ads/", writable=True
    )
    other.members.add(charlie)
    return other


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_a_member_of_another_project_cannot_upload_into_this_one(
    project: Any, scenes: str, ads: Project, charlie: Any, storage_root: Path
) -> None:
    as_charlie = _client(charlie)
    # Through this project's URL: not his project, so it does not exist for him.
    assert start(as_charlie, project, scenes, "evil.blend", 4).status_code == 404
    # Through his own project, aiming at this project's folder: outside his mappings.
    response = start(as_charlie, ads, scenes, "evil.blend", 4)
    assert response.status_code == 400
    assert "outside this project's storage mappings" in response.json()["error"]
    assert _files(storage_root) == []


def test_an_upload_started_by_one_user_cannot_be_fed_by_another(
    project: Any, scenes: str, bob: Any, charlie: Any, storage_root: Path
) -> None:
    token = start(_client(bob), project, scenes, "x.blend", 4).json()["upload"]
    project.members.add(charlie)  # even a fellow member cannot write into bob's upload
    as_charlie = _client(charlie)
    assert put(as_charlie, project, token, 0, b"evil").status_code == 404
    assert complete(as_charlie, project, token).status_code == 404


def test_an_upload_stops_when_the_uploader_leaves_the_project(
    project: Any, scenes: str, bob: Any, storage_root: Path
) -> None:
    as_bob = _client(bob)
    token = start(as_bob, project, scenes, "x.blend", 4).json()["upload"]
    project.members.remove(bob)
    assert put(as_bob, project, token, 0, b"late").status_code == 404
    assert _files(storage_root) == []


def test_a_forged_upload_token_is_refused(project: Any, scenes: str, bob: Any) -> None:
    as_bob = _client(bob)
    token = start(as_bob, project, scenes, "x.blend", 4).json()["upload"]
    forged = token[:-3] + ("AAA" if token[-3:] != "AAA" else "BBB")
    assert put(as_bob, project, forged, 0, b"abcd").status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "../evil.blend",
        "sub/../../evil.blend",
        "..",
        "/etc/evil.blend",
        "/tmp/evil.blend",
        "C:/evil.blend",
        "sub\\..\\evil.blend",
        "evil\x00.blend",
        "evil\n.blend",
        "sub//evil.blend",
        "./evil.blend",
        "",
        "x" * 256,
        "/".join(["d" * 200] * 6),
        ".renderhub-tmp-upload-" + "0" * 32,
    ],
)
def test_paths_that_escape_or_confuse_are_refused(
    project: Any, scenes: str, bob: Any, storage_root: Path, path: str
) -> None:
    response = upload(_client(bob), project, scenes, path, b"evil")
    assert response.status_code == 400
    if "\x00" not in path:  # NUL never gets this far: the middleware refuses it in any form
        assert response.json()["error"]
    assert _files(storage_root) == []


def test_a_folder_outside_the_mappings_is_refused(
    project: Any, scenes: str, bob: Any, storage_url: str, storage_root: Path
) -> None:
    for folder in (storage_url, storage_url + "secret/", "file:///etc/", scenes + "../"):
        response = start(_client(bob), project, folder, "evil.blend", 4)
        assert response.status_code == 400, folder
    assert _files(storage_root) == []


def test_a_symlink_out_of_the_mapping_is_not_followed(
    project: Any, scenes: str, ads: Project, bob: Any, storage_root: Path, tmp_path: Path
) -> None:
    (storage_root / "ads").mkdir()
    (storage_root / "scenes").mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    # One link to another project's folder (inside the storage root), one out of the root.
    (storage_root / "scenes" / "to-ads").symlink_to(storage_root / "ads")
    (storage_root / "scenes" / "to-outside").symlink_to(outside)
    as_bob = _client(bob)
    for path in ("to-ads/evil.blend", "to-outside/evil.blend", "to-ads/sub/evil.blend"):
        response = start(as_bob, project, scenes, path, 4)
        assert response.status_code in (400, 403), path
    assert start(as_bob, project, scenes + "to-ads/", "evil.blend", 4).status_code in (400, 403)
    assert list((storage_root / "ads").iterdir()) == []
    assert list(outside.iterdir()) == []


def test_a_symlink_planted_at_the_partial_name_is_not_written_through(
    project: Any, scenes: str, bob: Any, storage_root: Path, tmp_path: Path
) -> None:
    as_bob = _client(bob)
    token = start(as_bob, project, scenes, "x.blend", 4).json()["upload"]
    from django.core import signing

    from projects.uploads import TOKEN_SALT

    upload_id = signing.TimestampSigner(salt=TOKEN_SALT).unsign_object(token)["i"]
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    (storage_root / "scenes").mkdir(exist_ok=True)
    (storage_root / "scenes" / f".renderhub-tmp-upload-{upload_id}").symlink_to(victim)
    assert put(as_bob, project, token, 0, b"evil").status_code != 200
    assert victim.read_bytes() == b"keep"


def test_a_read_only_mapping_refuses_uploads(project: Any, bob: Any, storage_root: Path) -> None:
    source = project.mappings.get().source  # writable is off by default
    response = start(_client(bob), project, source, "x.blend", 4)
    assert response.status_code == 403
    assert "read-only" in response.json()["error"]
    assert _files(storage_root) == []


def test_a_mapping_made_read_only_mid_upload_stops_it(
    project: Any, scenes: str, bob: Any, storage_root: Path
) -> None:
    as_bob = _client(bob)
    token = start(as_bob, project, scenes, "x.blend", 4).json()["upload"]
    project.mappings.update(writable=False)
    assert put(as_bob, project, token, 0, b"abcd").status_code == 403
    assert _files(storage_root) == []


def test_uploads_need_a_login_and_a_csrf_token(
    project: Any, scenes: str, bob: Any, storage_root: Path
) -> None:
    anonymous = Client()
    assert start(anonymous, project, scenes, "x.blend", 4).status_code in (302, 403)
    checked = Client(enforce_csrf_checks=True)
    checked.force_login(bob)
    assert start(checked, project, scenes, "x.blend", 4).status_code == 403
    assert _files(storage_root) == []
