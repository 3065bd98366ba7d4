"""The scene and exactly its files on a BatchCompute node (the fake runs the node package
for real, with real Blender): textures in a subfolder, a sibling folder, under a Windows
and a Mac path a mapping translates (rewritten in the manager's copy), in a linked library
and an image sequence render with no missing-texture (magenta) pixel; a file gone since
submit fails the chunk naming it, without rendering."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from images.models import Software
from jobs import services
from jobs.choices import JobState
from jobs.models import RenderJob
from tests.compute.test_end_to_end import run_until_done
from tests.fakes.batchcompute import FakeBatchCompute
from tests.fakes.oss import FakeOSS
from tests.jobs.dep_tree import MAC_PREFIX, WIN_PREFIX, build_tree, magenta_pixels

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.blender,
    pytest.mark.skipif(shutil.which("blender") is None, reason="needs Blender"),
]


@pytest.fixture
def tree_in_bucket(cloud_project: Any, cloud_oss: FakeOSS, bucket: str, tmp_path: Path) -> str:
    cloud_project.mappings.update(artist_paths=f"{WIN_PREFIX}\n{MAC_PREFIX}")
    tree = build_tree(tmp_path / "tree")
    for path in tree.rglob("*"):
        if path.is_file():
            cloud_oss.put(bucket, "scenes/" + path.relative_to(tree).as_posix(), path.read_bytes())
    return f"oss://{bucket}/scenes/shots/all.blend"


@pytest.fixture
def cloud_blender(cloud_image: Any, blender_software: Any) -> Any:
    return Software.objects.create(
        image=cloud_image,
        name="blender",
        scene_suffixes=blender_software.scene_suffixes,
        command_template=blender_software.command_template,
        parameters=blender_software.parameters,
        progress_parser=blender_software.progress_parser,
    )


def submit(project: Any, software: Any, cluster: Any, scene: str, capture: Any) -> RenderJob:
    request = services.RenderRequest(
        project=project, software=software, cluster=cluster, scenes=[scene], frames="1-3", nodes=2
    )
    with capture(execute=True):
        [job] = services.submit_render(request)
    return job


def test_a_scene_whose_files_live_all_over_renders_whole_on_a_cloud_node(
    cloud_project: Any,
    cloud_blender: Any,
    cloud_cluster: Any,
    tree_in_bucket: str,
    fake_bc: FakeBatchCompute,
    cloud_oss: FakeOSS,
    bucket: str,
    django_capture_on_commit_callbacks: Any,
    tmp_path: Path,
) -> None:
    fake_bc.run_commands = True
    job = submit(
        cloud_project,
        cloud_blender,
        cloud_cluster,
        tree_in_bucket,
        django_capture_on_commit_callbacks,
    )
    job = run_until_done(job, django_capture_on_commit_callbacks, timeout=300)
    assert job.state == JobState.FINISHED, job.failure_reason

    prefix = job.output_url.removeprefix(f"oss://{bucket}/")
    for n in (1, 2, 3):  # the sequence's every file
        frame = tmp_path / f"all_{n:04d}.png"
        stored = cloud_oss.get(bucket, f"{prefix}all_{n:04d}.png")
        assert stored is not None, f"frame {n} is not in the output folder"
        frame.write_bytes(stored.data)
        assert magenta_pixels(frame) == 0
    # The node was given exactly the scene's files, the scene as the manager rewrote it.
    spec_key = next(k for k in cloud_oss.keys(bucket) if k.endswith("/spec.json"))
    stored_spec = cloud_oss.get(bucket, spec_key)
    assert stored_spec is not None
    spec = json.loads(stored_spec.data)["common"]
    sources = sorted(i["src"] for i in spec["inputs"])
    assert "/renderhub/control/scene/shots/all.blend" in sources
    assert "/mnt/scenes/assets/tex/checker.png" in sources
    assert not any(s.endswith(("notes.txt", ".blend1", "gone.blend")) for s in sources)
    assert spec["scene"] == f"/renderhub/scene/job-{job.pk}/shots/all.blend"


def test_a_file_gone_since_submit_fails_the_chunk_naming_it(
    cloud_project: Any,
    cloud_blender: Any,
    cloud_cluster: Any,
    tree_in_bucket: str,
    fake_bc: FakeBatchCompute,
    cloud_oss: FakeOSS,
    bucket: str,
    django_capture_on_commit_callbacks: Any,
) -> None:
    job = submit(
        cloud_project,
        cloud_blender,
        cloud_cluster,
        tree_in_bucket,
        django_capture_on_commit_callbacks,
    )
    with cloud_oss._lock:  # gone after the submission was checked, before any node ran
        del cloud_oss.buckets[bucket].objects["scenes/assets/tex/checker.png"]
    fake_bc.run_commands = True
    job = run_until_done(job, django_capture_on_commit_callbacks, timeout=300)
    assert job.state == JobState.FAILED
    assert "/mnt/scenes/assets/tex/checker.png does not exist" in job.failure_reason
    assert job.frames_done == 0
