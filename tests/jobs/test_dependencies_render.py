"""End to end with a real render worker and real Blender: a scene whose files live in a
subfolder, a sibling folder, under a Windows path a mapping translates, in a linked library
(with its own texture) and in an image sequence renders every frame with no missing-texture
(magenta) pixel, from local storage and from OSS (the wire-level fake, through oss2)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from clusters.models import Cluster
from images.models import Software
from jobs import services
from jobs.choices import JobState
from renderhub import storage
from tests.jobs.dep_tree import MAC_PREFIX, WIN_PREFIX, build_tree, magenta_pixels
from tests.workers import render_worker_for, wait_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.blender,
    pytest.mark.skipif(shutil.which("blender") is None, reason="needs Blender"),
]


def rendered_without_magenta(job: Any, tmp_path: Path) -> list[int]:
    job = wait_for(job, timeout=240)
    assert job.state == JobState.FINISHED, job.failure_reason
    backend, prefix = storage.resolve(job.output_url)
    counts = []
    for entry in backend.walk(prefix):
        if entry.key.endswith(".png") and "/_" not in entry.key[len(prefix) - 1 :]:
            local = tmp_path / entry.name
            backend.download_file(entry.key, local)
            counts.append(magenta_pixels(local))
    return counts


def submit_tree(
    project: Any, software: Any, cluster: Any, storage_root: Path, storage_url: str, frames: str
) -> Any:
    """The studio tree in the project's storage (its artists' paths named), its scene
    submitted as one job on one node."""
    project.mappings.update(artist_paths=f"{WIN_PREFIX}\n{MAC_PREFIX}")
    build_tree(storage_root / "scenes")
    [job] = services.submit_render(
        services.RenderRequest(
            project=project,
            software=software,
            cluster=cluster,
            scenes=[storage_url + "scenes/shots/all.blend"],
            frames=frames,
            nodes=1,
        )
    )
    return job


def test_local_storage(
    project: Any,
    blender_software: Any,
    cluster: Any,
    storage_root: Path,
    storage_url: str,
    render_worker: Any,
    tmp_path: Path,
) -> None:
    job = submit_tree(project, blender_software, cluster, storage_root, storage_url, "1-3")
    assert rendered_without_magenta(job, tmp_path) == [0, 0, 0]


def test_oss_storage(
    cloud_project: Any,
    cloud_oss: Any,
    bucket: str,
    blender_software: Any,
    settings: Any,
    tmp_path: Path,
) -> None:
    cloud_project.mappings.update(artist_paths=f"{WIN_PREFIX}\n{MAC_PREFIX}")
    tree = build_tree(tmp_path / "tree")
    for path in tree.rglob("*"):
        if path.is_file():
            key = "scenes/" + path.relative_to(tree).as_posix()
            cloud_oss.put(bucket, key, path.read_bytes())
    image = cloud_project.image
    software = Software.objects.create(
        image=image,
        name="blender",
        scene_suffixes=blender_software.scene_suffixes,
        command_template=blender_software.command_template,
        parameters=blender_software.parameters,
        progress_parser=blender_software.progress_parser,
    )
    cluster = Cluster.objects.create(name="oss-local", image=image, desired_nodes=1, max_nodes=2)
    with render_worker_for(cluster, settings):
        [job] = services.submit_render(
            services.RenderRequest(
                project=cloud_project,
                software=software,
                cluster=cluster,
                scenes=[f"oss://{bucket}/scenes/shots/all.blend"],
                frames="1-2",
            )
        )
        assert rendered_without_magenta(job, tmp_path) == [0, 0]


def test_a_file_gone_since_submit_fails_the_job_naming_it_without_retries(
    project: Any,
    fake_software: Any,
    cluster: Any,
    storage_root: Path,
    storage_url: str,
    settings: Any,
) -> None:
    job = submit_tree(project, fake_software, cluster, storage_root, storage_url, "1-2")
    (storage_root / "scenes/assets/tex/checker.png").unlink()  # after submit, before a node

    with render_worker_for(cluster, settings):
        job = wait_for(job, timeout=120)

    assert job.state == JobState.FAILED
    task = job.tasks.get()
    assert task.attempts == 1  # not retried: it is gone for every node
    assert "checker.png, which the scene needs, is no longer in storage" in task.failure_reason
    assert job.frames_done == 0
