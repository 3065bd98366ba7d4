"""Staging exactly a scene and its files on a node, from local storage and from OSS (the
wire-level fake, through oss2): the layout kept, absolute paths from another platform
rewritten in a private copy, each file fetched once per node; rendered by real Blender
with no missing-texture (magenta) pixel."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from jobs import scene_staging
from renderhub import storage
from renderhub.blend import deps
from tests.jobs.dep_tree import MAC_PREFIX, WIN_PREFIX, build_tree, magenta_pixels

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(shutil.which("blender") is None, reason="needs Blender"),
]

EXPECTED = [
    "assets/tex/checker.png",
    "assets/wood/wood.1001.png",
    "assets/wood/wood.1002.png",
    "lib/lib.blend",
    "lib/tex/lib.png",
    "shots/all.blend",
    "shots/seq/frame_0001.png",
    "shots/seq/frame_0002.png",
    "shots/seq/frame_0003.png",
    "shots/tex/a.png",
    "win/tex/win.png",
]


def staged_files(root: Path) -> list[str]:
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith(".")
    )


def render(scene: Path, out: Path, frame: int = 1) -> Path:
    argv = ["blender", "-b", "--factory-startup", "-noaudio", str(scene)]
    argv += ["-o", str(out / "f_####"), "-F", "PNG", "-f", str(frame)]
    subprocess.run(argv, check=True, capture_output=True, timeout=180)
    return out / f"f_{frame:04d}.png"


@pytest.fixture
def local_tree(storage_root: Path, project: Any) -> Path:
    project.mappings.update(artist_paths=f"{WIN_PREFIX}\n{MAC_PREFIX}")
    return build_tree(storage_root / "scenes")


def job(pk: int, url: str, project: Any) -> Any:
    return SimpleNamespace(pk=pk, scene_url=url, project=project)


def test_local_storage_stages_exactly_the_scene_and_its_files_and_renders_them_all(
    local_tree: Path, project: Any, storage_url: str, tmp_path: Path
) -> None:
    original = (local_tree / "shots/all.blend").read_bytes()
    scene, root = scene_staging.stage_scene(job(1, storage_url + "scenes/shots/all.blend", project))

    assert scene == root / "shots/all.blend"
    assert staged_files(root) == EXPECTED  # not notes.txt, gone.blend or the .blend1
    # The Windows path is relative in the staged copy; the original is untouched.
    paths = [r.path for r in deps.read_references(scene)]
    assert "//../win/tex/win.png" in paths and "//../assets/wood/wood.<UDIM>.png" in paths
    assert not any(p.startswith(("P:", "/Volumes")) for p in paths)
    assert (local_tree / "shots/all.blend").read_bytes() == original

    for frame in (1, 3):  # the sequence's first and last file
        assert magenta_pixels(render(scene, tmp_path / "out", frame)) == 0

    # What the count catches: a scene whose texture is missing (accepted at submit).
    gone, _ = scene_staging.stage_scene(job(2, storage_url + "scenes/shots/gone.blend", project))
    assert magenta_pixels(render(gone, tmp_path / "gone")) > 0


def test_each_file_is_fetched_once_per_node_and_shared_by_jobs(
    local_tree: Path, project: Any, storage_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend, _ = storage.resolve(storage_url)
    fetched: list[str] = []
    real = type(backend).download_file

    def counting(self: Any, key: str, path: Any, *args: Any, **kwargs: Any) -> Any:
        fetched.append(key)
        return real(self, key, path, *args, **kwargs)

    monkeypatch.setattr(type(backend), "download_file", counting)
    url = storage_url + "scenes/shots/all.blend"
    _, first = scene_staging.stage_scene(job(1, url, project))
    assert len(fetched) == len(EXPECTED)
    scene_staging.stage_scene(job(1, url, project))  # another chunk of the same job
    _, second = scene_staging.stage_scene(job(2, url, project))  # another job
    assert len(fetched) == len(EXPECTED)
    texture = "assets/tex/checker.png"
    assert (first / texture).stat().st_ino == (second / texture).stat().st_ino

    # A changed file is a new version: fetched again, the older job's copy untouched.
    (local_tree / texture).write_bytes(b"changed")
    _, third = scene_staging.stage_scene(job(3, url, project))
    assert fetched.count("scenes/" + texture) == 2
    assert (third / texture).read_bytes() == b"changed"
    assert (first / texture).read_bytes() != b"changed"


def test_oss_stages_exactly_the_scene_and_its_files_and_renders_them_all(
    local_tree: Path, cloud_project: Any, cloud_oss: Any, bucket: str, tmp_path: Path
) -> None:
    cloud_project.mappings.update(artist_paths=f"{WIN_PREFIX}\n{MAC_PREFIX}")
    for path in local_tree.rglob("*"):
        if path.is_file():
            cloud_oss.put(
                bucket, "scenes/" + path.relative_to(local_tree).as_posix(), path.read_bytes()
            )
    url = f"oss://{bucket}/scenes/shots/all.blend"

    scene, root = scene_staging.stage_scene(job(7, url, cloud_project))

    assert staged_files(root) == EXPECTED
    assert magenta_pixels(render(scene, tmp_path / "out")) == 0
