"""Issue 14, reviewed as a hostile member: what a job's manifest lists, and what a node stages
from it, stays in the member's own project.

On local storage a folder of a project's mapping may hold a symbolic link (an artist with
the share mounted makes one; the storage browser already refuses to write through one, see
test_upload_paths). A link to another project's folder makes that project's files look like
the member's by their URL: ``scenes/shots/peek/secret.png`` is inside the mapping
``scenes/`` by name, and storage follows the link to ``other/secret.png``. A scene that
references ``//peek/secret.png`` had the other project's file listed in its manifest and
staged beside it, where the renderer paints it into the member's frames. So does a file
swapped for such a link after submit (the manifest keeps the URL; the node fetches what is
there then), and a scene whose references could not be read (its folder is staged whole).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from jobs import scene_staging, services
from projects.models import Project, StorageMapping
from tests.jobs.dep_tree import blender_scene

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(shutil.which("blender") is None, reason="needs Blender"),
]

SECRET = b"another project's frame"


@pytest.fixture
def other(storage_root: Path, image: Any, storage_url: str) -> Path:
    other = Project.objects.create(name="other", image=image, output_prefix=storage_url + "o/")
    StorageMapping.objects.create(project=other, source=storage_url + "other/", destination="/o/")
    (storage_root / "other").mkdir()
    (storage_root / "other" / "secret.png").write_bytes(SECRET)
    return storage_root / "other"


def _request(project: Any, software: Any, cluster: Any, scene: str, **kw: Any) -> Any:
    return services.RenderRequest(
        project=project, software=software, cluster=cluster, scenes=[scene], frames="1", **kw
    )


def _staged(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith(".")
    }


def test_a_link_to_another_projects_folder_is_neither_listed_nor_staged(
    other: Path,
    storage_root: Path,
    storage_url: str,
    project: Any,
    blender_software: Any,
    cluster: Any,
) -> None:
    shots = storage_root / "scenes" / "shots"
    blender_scene(shots / "peek.blend", "image=//peek/secret.png@-")
    (shots / "peek").symlink_to(other)
    scene = storage_url + "scenes/shots/peek.blend"

    with pytest.raises(services.SubmissionError) as exc:
        services.submit_render(_request(project, blender_software, cluster, scene))
    assert "secret.png" in str(exc.value)
    # Accepting missing files does not let it through either.
    with pytest.raises(services.SubmissionError):
        services.submit_render(
            _request(project, blender_software, cluster, scene, allow_missing=True)
        )


def test_a_file_swapped_for_a_link_after_submit_is_not_staged(
    other: Path,
    storage_root: Path,
    storage_url: str,
    project: Any,
    blender_software: Any,
    cluster: Any,
    settings: Any,
    tmp_path: Path,
) -> None:
    settings.RENDER_WORK_DIR = tmp_path / "work"
    shots = storage_root / "scenes" / "shots"
    blender_scene(shots / "swap.blend", f"image=//tex/t.png@{shots}/tex/t.png")
    scene = storage_url + "scenes/shots/swap.blend"
    [job] = services.submit_render(_request(project, blender_software, cluster, scene))
    (shots / "tex" / "t.png").unlink()
    (shots / "tex" / "t.png").symlink_to(other / "secret.png")

    with pytest.raises(scene_staging.SceneFileGone, match=r"t\.png"):
        scene_staging.stage_scene(job)
    base = Path(settings.RENDER_WORK_DIR)
    assert not any(p.read_bytes() == SECRET for p in base.rglob("*") if p.is_file())


def test_a_scene_staged_whole_leaves_out_a_link_to_another_project(
    other: Path,
    storage_root: Path,
    storage_url: str,
    project: Any,
    blender_software: Any,
    cluster: Any,
    settings: Any,
    tmp_path: Path,
) -> None:
    settings.RENDER_WORK_DIR = tmp_path / "work"
    shots = storage_root / "scenes" / "shots"
    blender_scene(shots / "whole.blend", f"image=//tex/w.png@{shots}/tex/w.png")
    (shots / "peek").symlink_to(other)
    scene = storage_url + "scenes/shots/whole.blend"
    [job] = services.submit_render(_request(project, blender_software, cluster, scene))
    job.scene_files = {"version": 1, "folder": True, "scene": "", "files": [], "missing": []}

    _, root = scene_staging.stage_scene(job)

    staged = _staged(root)
    assert "shots/tex/w.png" in staged and "shots/whole.blend" in staged
    assert SECRET not in staged.values()
