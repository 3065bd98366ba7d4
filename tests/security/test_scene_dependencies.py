"""Issue 14: a scene's references are the member's words, not the farm's.

A hostile .blend links a library at /etc/passwd, shows textures from another project's
folder (relative, climbing out of its own), from above the storage root, and through a
mapping's node path with '..' in it. Each is classified as outside or untranslated: never
read, never staged, never confirmed to exist, and named when the submission is refused.
The reader itself is bounded (a file that makes it loop is cut off), and the scene check
(page, API) reads only scenes inside the asking member's project.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from jobs import scene_manifest, scene_staging, services
from jobs.dependencies import OUTSIDE, UNTRANSLATED, analyse_scene
from projects.models import Project, StorageMapping
from renderhub import storage
from renderhub.blend import deps
from renderhub.blend.facts import FactsError
from tests.jobs.dep_tree import blender_scene, build_tree
from tests.jobs.test_scene_facts_reader import hostile_file

pytestmark = pytest.mark.django_db
needs_blender = pytest.mark.skipif(shutil.which("blender") is None, reason="needs Blender")

CLIMB = "//" + "../" * 12 + "etc/passwd"
THROUGH_MAPPING = "/mnt/scenes/../../etc/passwd"
OTHER = "//../../other/secret.png"


@pytest.fixture
def hostile(storage_root: Path, project: Any, image: Any, storage_url: str) -> str:
    other = Project.objects.create(name="other", image=image, output_prefix=storage_url + "o/")
    StorageMapping.objects.create(project=other, source=storage_url + "other/", destination="/o/")
    (storage_root / "other").mkdir()
    (storage_root / "other/secret.png").write_bytes(b"another project's frame")
    tree = build_tree(storage_root / "scenes")
    blender_scene(
        tree / "shots" / "hostile.blend",
        f"image={CLIMB}@-",
        f"image={THROUGH_MAPPING}@-",
        f"image={OTHER}@-",
        "lib=//../lib/lib.blend@Plane0Mat",
        extra=("--library-path", "/etc/passwd"),
    )
    return storage_url + "scenes/shots/hostile.blend"


@needs_blender
def test_references_out_of_the_project_are_classified_never_read_nor_staged(
    hostile: str, project: Any, blender_software: Any, cluster: Any, storage_url: str
) -> None:
    report = analyse_scene(project, hostile)
    states = {d.path: d.state for d in report.dependencies}
    assert states == {
        CLIMB: OUTSIDE,
        THROUGH_MAPPING: OUTSIDE,
        OTHER: OUTSIDE,
        "/etc/passwd": UNTRANSLATED,
    }
    # Never followed: /etc/passwd is not read as a library, nothing beside it is listed.
    assert report.warnings == [] and len(report.dependencies) == 4
    # The other project's file exists, yet nothing says so: no existence oracle.
    other = next(d for d in report.dependencies if d.path == OTHER)
    assert other.files == []

    with pytest.raises(services.SubmissionError) as exc:
        services.submit_render(
            services.RenderRequest(
                project=project,
                software=blender_software,
                cluster=cluster,
                scenes=[hostile],
                frames="1",
            )
        )
    message = exc.value.error_dict["scenes"][0].message
    assert all(path in message for path in (CLIMB, THROUGH_MAPPING, OTHER, "/etc/passwd"))

    # Accepted anyway, the node stages the scene alone: none of those files.
    [job] = services.submit_render(
        services.RenderRequest(
            project=project,
            software=blender_software,
            cluster=cluster,
            scenes=[hostile],
            frames="1",
            allow_missing=True,
        )
    )
    assert [f["place"] for f in job.scene_files["files"]] == ["hostile.blend"]
    scene, root = scene_staging.stage_scene(job)
    staged = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert staged == [".staged", "hostile.blend"]
    assert scene == root / "hostile.blend"


def test_the_reader_is_cut_off_on_a_file_made_to_loop(settings: Any, tmp_path: Path) -> None:
    hostile_file(tmp_path / "loop.blend")
    started = time.monotonic()
    with pytest.raises(FactsError):
        deps.read_references(tmp_path / "loop.blend", timeout=2.0, max_memory=150 << 20)
    assert time.monotonic() - started < 15


def test_a_submit_of_a_file_made_to_loop_waits_one_cut_off_not_two(
    project: Any, blender_software: Any, cluster: Any, storage_root: Path, storage_url: str,
    settings: Any,
) -> None:  # fmt: skip
    # The facts and the references are read by one child: the submit waits for its
    # timeout once, and both checks say what went unchecked.
    settings.SCENE_FACTS_TIMEOUT = 3.0
    settings.SCENE_FACTS_MAX_MEMORY = 500 << 20
    (storage_root / "scenes").mkdir(exist_ok=True)
    hostile_file(storage_root / "scenes" / "loop.blend")
    started = time.monotonic()
    [job] = services.submit_render(
        services.RenderRequest(
            project=project, software=blender_software, cluster=cluster,
            scenes=[storage_url + "scenes/loop.blend"], frames="1",
        )
    )  # fmt: skip
    assert time.monotonic() - started < 3.0 * 2 - 0.5  # two readers would wait 6 s
    assert any("took longer than 3 s" in w for w in job.warnings)


def test_a_staged_path_cannot_leave_the_jobs_folder(tmp_path: Path) -> None:
    for bad in ("../x", "a/../../x", "/etc/x", "a//b"):
        with pytest.raises(storage.StorageError):
            scene_manifest.inside(tmp_path, bad)


def test_the_scene_check_reads_only_the_members_own_project(
    bob: Any, charlie: Any, project: Any, image: Any, storage_url: str, client: Any
) -> None:
    other = Project.objects.create(name="other", image=image, output_prefix=storage_url + "o/")
    StorageMapping.objects.create(project=other, source=storage_url + "other/", destination="/o/")
    api = APIClient()
    api.force_authenticate(bob)
    for scene in (
        storage_url + "other/secret.blend",
        "file:///etc/passwd",
        "oss://bucket-b/x.blend",
    ):
        answer = api.post(
            "/api/scenes/check/", {"project": "shots", "scenes": [scene]}, format="json"
        )
        assert answer.status_code == 400
        assert "outside this project's storage mappings" in answer.json()["scenes"][0]
    # A project bob is not in is not found, whatever its scenes.
    payload = {"project": "other", "scenes": [storage_url + "other/secret.blend"]}
    assert api.post("/api/scenes/check/", payload, format="json").status_code == 404
    client.force_login(bob)
    page = client.get("/submit/files/", {"project": other.pk, "scenes": payload["scenes"]})
    assert page.status_code == 404
