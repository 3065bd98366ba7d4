"""Issue 14, reviewed: a file an unfinished job renders from cannot be replaced by writing
it under another spelling of its name.

Uploads compare stored files, not URLs (``files_in_use``): escapes, ``./`` and doubled
slashes were undone, but on local storage a folder of a mapping may be a symbolic link to
another folder of the same mapping (``scenes/current`` -> ``scenes/v3``, as studios keep a
"current version" folder). charlie, a member of bob's project, uploaded
``current/shot.blend`` through the storage browser: another key, so not "in use", and it
replaced ``v3/shot.blend``, the scene bob's queued job renders from.

A job renders a .blend whose absolute paths were rewritten from the manager's copy in its
output folder (``_logs/scene/``), not from the original: where the project maps its output
folder writable, charlie replaced that copy, and bob's job rendered charlie's scene, while
the original it stands for was guarded.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from jobs import services
from jobs.models import JobState, RenderJob
from jobs.scene_upload import files_in_use
from projects.models import StorageMapping
from renderhub import storage
from tests.jobs.dep_tree import MAC_PREFIX, WIN_PREFIX, build_tree
from tests.projects.upload_helpers import upload

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _own_registry(settings: Any, tmp_path: Path) -> None:
    settings.VAR_DIR = tmp_path  # open uploads of earlier tests reserve nothing here


@pytest.fixture
def scenes(project: Any, charlie: Any) -> str:
    project.mappings.update(writable=True)
    project.members.add(charlie)
    return str(project.mappings.get().source)


@pytest.fixture
def bobs_scene(
    project: Any, scenes: str, storage_root: Path, blender_software: Any, cluster: Any
) -> Path:
    """scenes/v3/shot.blend, which bob's queued job renders from; scenes/current is v3."""
    path = storage_root / "scenes" / "v3" / "shot.blend"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"bob's scene")
    (storage_root / "scenes" / "current").symlink_to("v3")
    RenderJob.objects.create(
        project=project,
        software=blender_software,
        cluster=cluster,
        name="shot",
        scene_url=storage.join(scenes, "v3/shot.blend"),
        frame_spec="1",
        frame_count=1,
        node_count=1,
        output_url=str(project.output_prefix) + "shot/",
        state=JobState.QUEUED,
    )
    return path


def test_a_used_scene_is_not_replaced_through_a_folder_link(
    project: Any, scenes: str, bobs_scene: Path, charlie: Any
) -> None:
    client = Client()
    client.force_login(charlie)
    response = upload(client, project, scenes + "current/", "shot.blend", b"charlie's scene")

    assert response.status_code == 409
    assert "renders from" in response.json()["error"]
    assert bobs_scene.read_bytes() == b"bob's scene"


def test_the_in_use_check_knows_the_file_by_any_spelling(scenes: str, bobs_scene: Path) -> None:
    for spelling in ("current/shot.blend", "current/./shot.blend", "v3//shot.blend"):
        url = scenes + spelling
        assert url in files_in_use([url]), spelling


@pytest.mark.skipif(shutil.which("blender") is None, reason="needs Blender")
def test_the_rewritten_copy_a_job_renders_is_not_replaced(
    project: Any,
    scenes: str,
    storage_root: Path,
    blender_software: Any,
    cluster: Any,
    bob: Any,
    charlie: Any,
) -> None:
    project.mappings.update(artist_paths=f"{WIN_PREFIX}\n{MAC_PREFIX}")
    output = str(project.output_prefix)
    StorageMapping.objects.create(
        project=project, source=output, destination="/mnt/output/", writable=True
    )
    build_tree(storage_root / "scenes")
    request = services.RenderRequest(
        project=project,
        software=blender_software,
        cluster=cluster,
        scenes=[scenes + "shots/all.blend"],
        frames="1",
    )
    [job] = services.submit_render(request, user=bob)
    [copy] = [f["url"] for f in job.scene_files["files"] if "source" in f]
    folder, name = copy.rsplit("/", 1)
    before = storage.resolve(copy)[0].read(storage.resolve(copy)[1])

    client = Client()
    client.force_login(charlie)
    response = upload(client, project, folder + "/", name, b"charlie's scene")

    assert response.status_code == 409
    assert storage.resolve(copy)[0].read(storage.resolve(copy)[1]) == before
