"""The browser pane's words and links: the count of other files in plain English, upload
controls only where uploads are allowed, and links that keep the submit page's folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.fixture
def as_bob(client: Client, bob: Any) -> Client:
    client.force_login(bob)
    return client


@pytest.fixture
def tree(storage_root: Path) -> Path:
    (storage_root / "scenes" / "seq").mkdir(parents=True)
    (storage_root / "scenes" / "seq" / "shot.blend").write_bytes(b"x")
    return storage_root / "scenes"


def pane(client: Client, project: Any, path: str, **params: Any) -> str:
    query = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in {"path": path, **params}.items())
    response = client.get(f"/projects/{project.pk}/browse/?{query}", HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.parametrize(
    ("others", "sentence"),
    [
        (1, "1 other file here is not a Blender scene."),
        (3, "3 other files here are not Blender scenes."),
    ],
)
def test_other_files_are_counted_in_plain_english(
    as_bob: Client,
    project: Any,
    blender_software: Any,
    storage_root: Path,
    others: int,
    sentence: str,
) -> None:
    folder = storage_root / "scenes"
    folder.mkdir()
    (folder / "shot.blend").write_bytes(b"x")
    for i in range(others):
        (folder / f"notes{i}.txt").write_bytes(b"x")
    html = pane(as_bob, project, project.mappings.get().source, software=blender_software.pk)
    assert sentence in html


def test_without_software_every_file_is_listed_and_none_counted_apart(
    as_bob: Client, project: Any, storage_root: Path
) -> None:
    (storage_root / "scenes").mkdir()
    (storage_root / "scenes" / "a.txt").write_bytes(b"x")
    html = pane(as_bob, project, project.mappings.get().source)
    assert "a.txt" in html and "other file" not in html


def test_upload_controls_only_on_writable_mappings(
    as_bob: Client, project: Any, storage_root: Path
) -> None:
    source = project.mappings.get().source
    assert "webkitdirectory" not in pane(as_bob, project, source)
    assert "mapped read-only" in pane(as_bob, project, source)
    project.mappings.update(writable=True)
    html = pane(as_bob, project, source)
    assert "webkitdirectory" in html and 'type="file" multiple' in html
    assert f'data-upload-start="/projects/{project.pk}/uploads/"' in html
    # The list of mapped folders itself is no place to upload to.
    assert "webkitdirectory" not in pane(as_bob, project, "")


def test_links_on_the_submit_page_keep_the_user_and_the_folder_there(
    as_bob: Client, project: Any, tree: Path
) -> None:
    source = project.mappings.get().source
    seq = quote(source + "seq/", safe="")
    html = pane(as_bob, project, source, **{"in": "submit"})
    # The address bar follows the folder (hx-push-url): a refused submit posts back to it.
    assert f'hx-push-url="/submit/?project={project.pk}&amp;software=&amp;path={seq}"' in html
    pane_url = f"/projects/{project.pk}/browse/?in=submit&amp;software=&amp;path={seq}"
    assert f'hx-get="{pane_url}"' in html
    alone = pane(as_bob, project, source)
    assert f'hx-push-url="/projects/{project.pk}/browse/?software=&amp;path={seq}"' in alone


def test_the_submit_page_opens_at_the_folder_in_its_address(
    as_bob: Client, project: Any, tree: Path
) -> None:
    source = project.mappings.get().source
    response = as_bob.get(f"/submit/?project={project.pk}&path={quote(source + 'seq/')}")
    assert response.context["folder"].url == source + "seq/"
    html = response.content.decode()
    assert 'hx-push-url="/submit/?project=' in html  # the embedded pane links stay there


def test_the_mapped_folders_say_which_take_uploads(
    as_bob: Client, project: Any, storage_url: str
) -> None:
    from projects.models import StorageMapping

    StorageMapping.objects.create(
        project=project, source=storage_url + "uploads/", destination="/mnt/u/", writable=True
    )
    html = pane(as_bob, project, "")
    scenes_row, uploads_row = html.split('<li class="entry dir">')[1:3]
    assert "read-only" in scenes_row and "uploads allowed" in uploads_row
