"""Staging exactly a scene and its files on a node, from local storage and from OSS (the
wire-level fake, through oss2), as the manifest made at submit lists them: the layout kept,
absolute paths from another platform rewritten in the manager's copy, each file fetched
once per node, a file gone since submit refused; rendered by real Blender with no
missing-texture (magenta) pixel. The node cache and staged scenes are pruned."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from jobs import scene_staging, services
from jobs.models import RenderJob
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


def submit(project: Any, url: str, software: Any, cluster: Any, **kw: Any) -> RenderJob:
    """A job as users submit it (its manifest fixed now); nothing dispatched."""
    request = services.RenderRequest(
        project=project, software=software, cluster=cluster, scenes=[url], frames="1", **kw
    )
    [job] = services.submit_render(request)
    return job


@pytest.fixture
def job(project: Any, blender_software: Any, cluster: Any) -> Any:
    def make(url: str, target: Any = None, **kw: Any) -> RenderJob:
        return submit(target or project, url, blender_software, cluster, **kw)

    return make


def test_local_storage_stages_exactly_the_scene_and_its_files_and_renders_them_all(
    local_tree: Path, storage_url: str, tmp_path: Path, job: Any
) -> None:
    original = (local_tree / "shots/all.blend").read_bytes()
    scene, root = scene_staging.stage_scene(job(storage_url + "scenes/shots/all.blend"))

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
    accepted = job(storage_url + "scenes/shots/gone.blend", allow_missing=True)
    assert accepted.scene_files["missing"] == [
        "//tex/gone.png (" + storage_url + "scenes/shots/tex/gone.png): image, missing"
    ]
    gone, _ = scene_staging.stage_scene(accepted)
    assert magenta_pixels(render(gone, tmp_path / "gone")) > 0


def test_each_file_is_fetched_once_per_node_and_shared_by_jobs(
    local_tree: Path, storage_url: str, monkeypatch: pytest.MonkeyPatch, job: Any
) -> None:
    url = storage_url + "scenes/shots/all.blend"
    jobs = [job(url) for _ in range(3)]
    backend, _ = storage.resolve(storage_url)
    fetched: list[str] = []
    real = type(backend).download_file

    def counting(self: Any, key: str, path: Any, *args: Any, **kwargs: Any) -> Any:
        fetched.append(key)
        return real(self, key, path, *args, **kwargs)

    monkeypatch.setattr(type(backend), "download_file", counting)
    _, first = scene_staging.stage_scene(jobs[0])
    assert len(fetched) == len(EXPECTED)
    scene_staging.stage_scene(jobs[0])  # another chunk of the same job
    _, second = scene_staging.stage_scene(jobs[1])  # another job
    # Only its own copy of the scene (its Windows and Mac paths rewritten) is new.
    assert len(fetched) == len(EXPECTED) + 1
    assert fetched[-1].endswith("/_logs/scene/shots/all.blend")
    texture = "assets/tex/checker.png"
    assert (first / texture).stat().st_ino == (second / texture).stat().st_ino

    # A changed file is a new version: fetched again, the older job's copy untouched.
    (local_tree / texture).write_bytes(b"changed")
    _, third = scene_staging.stage_scene(jobs[2])
    assert fetched.count("scenes/" + texture) == 2
    assert (third / texture).read_bytes() == b"changed"
    assert (first / texture).read_bytes() != b"changed"


def test_oss_stages_exactly_the_scene_and_its_files_and_renders_them_all(
    local_tree: Path,
    cloud_project: Any,
    cloud_oss: Any,
    bucket: str,
    tmp_path: Path,
    job: Any,
    image: Any,
) -> None:
    cloud_project.mappings.update(artist_paths=f"{WIN_PREFIX}\n{MAC_PREFIX}")
    for path in local_tree.rglob("*"):
        if path.is_file():
            cloud_oss.put(
                bucket, "scenes/" + path.relative_to(local_tree).as_posix(), path.read_bytes()
            )
    url = f"oss://{bucket}/scenes/shots/all.blend"
    cloud_project.image = image  # rendered by a worker of the local cluster
    cloud_project.save()

    scene, root = scene_staging.stage_scene(job(url, cloud_project))

    assert staged_files(root) == EXPECTED
    assert magenta_pixels(render(scene, tmp_path / "out")) == 0


def test_a_file_gone_since_submit_fails_the_chunk_naming_it_not_retried(
    local_tree: Path, storage_url: str, job: Any
) -> None:
    staged = job(storage_url + "scenes/shots/all.blend")
    (local_tree / "assets/tex/checker.png").unlink()

    with pytest.raises(scene_staging.SceneFileGone) as gone:
        scene_staging.stage_scene(staged)
    assert str(gone.value).startswith(
        storage_url + "scenes/assets/tex/checker.png, which the scene needs, is no longer in "
        "storage (it was there when the job was submitted)"
    )


def test_a_job_from_before_manifests_gets_one_when_first_staged(
    local_tree: Path, storage_url: str, job: Any
) -> None:
    old = job(storage_url + "scenes/shots/all.blend")
    RenderJob.objects.filter(pk=old.pk).update(scene_files=None)
    old.refresh_from_db()

    _, root = scene_staging.stage_scene(old)

    assert staged_files(root) == EXPECTED
    old.refresh_from_db()
    assert old.scene_files is not None and old.scene_files["scene"] == "shots/all.blend"


def test_pruning_keeps_what_jobs_use_and_trims_the_rest_oldest_first(
    local_tree: Path, storage_url: str, job: Any, settings: Any
) -> None:
    url = storage_url + "scenes/shots/all.blend"
    first, second = job(url), job(url)
    cache = scene_staging.node_cache()
    objects = lambda: {p.name for p in (cache.root / "objects").glob("*/*")}  # noqa: E731
    (local_tree / "shots/tex/a.png").write_bytes(b"a version only the first job has")
    _, first_root = scene_staging.stage_scene(first)
    before = objects()
    (local_tree / "shots/tex/a.png").write_bytes(b"a new version")
    _, second_root = scene_staging.stage_scene(second)
    assert len(objects()) == len(before) + 1  # both versions of a.png

    # The first job has not been used here for longer than RENDER_SCENE_KEEP_HOURS.
    settings.RENDER_SCENE_KEEP_HOURS = 1
    settings.RENDER_CACHE_MAX_BYTES = 0
    old = time.time() - 7200
    os.utime(first_root / ".staged", (old, old))
    for path in (cache.root / "objects").glob("*/*"):
        os.utime(path, (old, old))
    scene_staging.prune_node(force=True)

    assert not first_root.exists() and second_root.is_dir()
    # Only files the second job links stay.
    kept = {(second_root / f).stat().st_ino for f in staged_files(second_root)}
    assert {(cache.root / "objects" / n[:2] / n).stat().st_ino for n in objects()} == kept
    assert len(objects()) == len(before)
    assert (second_root / "shots/tex/a.png").read_bytes() == b"a new version"
    # A new job of the scene stages from what stayed.
    third = job(url)
    _, third_root = scene_staging.stage_scene(third)
    assert staged_files(third_root) == EXPECTED
