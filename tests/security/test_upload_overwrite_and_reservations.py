"""Attacks on local uploads found in review: replacing a file an unfinished job renders
from (the rule `manage.py upload` keeps, now kept by the storage browser too), and filling
the disk or the upload registry with many parallel starts.

bob and charlie are members of "shots" (scenes/ writable); the job is bob's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from jobs.models import JobState, RenderJob
from renderhub import storage
from tests.projects.upload_helpers import complete, put, start, upload

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _own_registry(settings: Any, tmp_path: Path) -> None:
    settings.VAR_DIR = tmp_path  # open uploads of earlier tests reserve nothing here


@pytest.fixture
def scenes(project: Any, charlie: Any) -> str:
    project.mappings.update(writable=True)
    project.members.add(charlie)
    return str(project.mappings.get().source)


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _job(project: Any, software: Any, cluster: Any, scene_url: str, state: str) -> RenderJob:
    return RenderJob.objects.create(
        project=project,
        software=software,
        cluster=cluster,
        name="shot",
        scene_url=scene_url,
        frame_spec="1-10",
        frame_count=10,
        node_count=1,
        output_url=str(project.output_prefix) + "shot/",
        state=state,
    )


@pytest.fixture
def used_scene(
    project: Any, scenes: str, storage_root: Path, blender_software: Any, cluster: Any
) -> Path:
    """scenes/shot é.blend, which bob's queued job renders from."""
    path = storage_root / "scenes" / "shot é.blend"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"bob's scene")
    url = storage.join(scenes, "shot é.blend")  # as submissions store it (percent-encoded)
    _job(project, blender_software, cluster, url, JobState.QUEUED)
    return path


def test_a_member_cannot_replace_the_scene_an_unfinished_job_renders(
    project: Any, scenes: str, used_scene: Path, charlie: Any
) -> None:
    response = upload(_client(charlie), project, scenes, "shot é.blend", b"charlie's scene")
    assert response.status_code == 409
    assert "renders from" in response.json()["error"] and "job #" in response.json()["error"]
    assert used_scene.read_bytes() == b"bob's scene"


def test_a_job_submitted_during_the_upload_still_keeps_its_scene(
    project: Any,
    scenes: str,
    storage_root: Path,
    blender_software: Any,
    cluster: Any,
    charlie: Any,
) -> None:
    scene = storage_root / "scenes" / "late.blend"
    scene.parent.mkdir(parents=True, exist_ok=True)
    scene.write_bytes(b"v1")
    as_charlie = _client(charlie)
    token = start(as_charlie, project, scenes, "late.blend", 2).json()["upload"]
    assert put(as_charlie, project, token, 0, b"v2").status_code == 200
    _job(project, blender_software, cluster, scenes + "late.blend", JobState.RUNNING)
    assert complete(as_charlie, project, token).status_code == 409
    assert scene.read_bytes() == b"v1"


def test_a_file_only_finished_jobs_used_may_be_replaced(
    project: Any,
    scenes: str,
    storage_root: Path,
    blender_software: Any,
    cluster: Any,
    charlie: Any,
) -> None:
    scene = storage_root / "scenes" / "done.blend"
    scene.parent.mkdir(parents=True, exist_ok=True)
    scene.write_bytes(b"v1")
    _job(project, blender_software, cluster, scenes + "done.blend", JobState.FINISHED)
    assert upload(_client(charlie), project, scenes, "done.blend", b"v2").status_code == 200
    assert scene.read_bytes() == b"v2"


def test_parallel_starts_cannot_reserve_more_than_the_cap(
    project: Any, scenes: str, bob: Any, settings: Any, storage_root: Path
) -> None:
    settings.UPLOAD_MAX_OPEN_BYTES = 10_000
    as_bob = _client(bob)
    for n in range(4):
        assert start(as_bob, project, scenes, f"part{n}.exr", 2_500).status_code == 200
    response = start(as_bob, project, scenes, "one-more.exr", 1)
    assert response.status_code == 429 and "Finish or cancel" in response.json()["error"]


def test_many_empty_starts_are_capped_too(
    project: Any, scenes: str, bob: Any, charlie: Any, settings: Any
) -> None:
    settings.UPLOAD_MAX_OPEN = 3
    as_bob = _client(bob)
    for n in range(3):
        assert start(as_bob, project, scenes, f"empty{n}", 0).status_code == 200
    assert start(as_bob, project, scenes, "empty3", 0).status_code == 429
    # The cap is bob's: charlie still uploads.
    assert start(_client(charlie), project, scenes, "his", 0).status_code == 200


def test_free_space_is_not_promised_twice(
    project: Any, scenes: str, bob: Any, charlie: Any, storage_root: Path, settings: Any
) -> None:
    import shutil

    storage_root.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(storage_root).free
    settings.UPLOAD_MAX_BYTES = settings.UPLOAD_MAX_OPEN_BYTES = 10 * free
    share = free * 6 // 10
    assert start(_client(bob), project, scenes, "a.exr", share).status_code == 200
    # bob's bytes may still arrive, so the disk cannot hold charlie's as well.
    response = start(_client(charlie), project, scenes, "b.exr", share)
    assert response.status_code == 507


def test_no_oss_form_for_a_scene_an_unfinished_job_renders(
    image: Any,
    bob: Any,
    charlie: Any,
    cloud_oss: Any,
    bucket: str,
    settings: Any,
    blender_software: Any,
    cluster: Any,
) -> None:
    from tests.projects.upload_helpers import make_oss_project

    oss_project = make_oss_project(image, bob, cloud_oss, bucket, settings)
    oss_project.members.add(charlie)
    source = str(oss_project.mappings.get().source)
    url = storage.join(source, "shot.blend")
    backend, key = storage.resolve(url)
    backend.write(key, b"bob's scene")
    _job(oss_project, blender_software, cluster, url, JobState.RUNNING)
    response = start(_client(charlie), oss_project, source, "shot.blend", 3)
    assert response.status_code == 409 and "renders from" in response.json()["error"]
    assert "fields" not in response.json()  # no signed form to post around the check
    assert backend.read(key) == b"bob's scene"
