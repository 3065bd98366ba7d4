"""Staging a scene from OSS never writes outside the chunk's scene folder.

A member who can write objects under their mapping (``ossutil cp``) controls the keys a
render worker lists when it downloads the scene's folder. ``scenes//tmp/x`` lists as an
absolute path after the mapping prefix is cut off, and joined to the staging folder it
replaced it: the worker wrote ``/tmp/x`` (``/etc/cron.d/…`` works the same) as root.
Through the real oss2 client against the wire-level fake OSS.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from jobs.runner import stage_scene

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("key", ["scenes//{outside}", "scenes/a/../../{outside}"])
def test_a_planted_key_cannot_escape_the_staging_folder(
    key: str, cloud_project: Any, cloud_oss: Any, bucket: str, settings: Any, tmp_path: Path
) -> None:
    settings.RENDER_WORK_DIR = tmp_path / "work"
    outside = tmp_path / f"planted-{uuid.uuid4().hex[:6]}"
    planted = key.format(outside=str(outside).lstrip("/"))
    cloud_oss.put(bucket, planted, b"* * * * * root id > /tmp/pwned\n")
    # What the download would fetch for the listed key after normalising it:
    cloud_oss.put(bucket, "scenes/" + str(outside).lstrip("/"), b"* * * * * root id\n")
    job = SimpleNamespace(  # from before manifests: its scene is read when staged
        pk=4242,
        scene_url=f"oss://{bucket}/scenes/shot_a.blend",
        project=cloud_project,
        scene_files=None,
    )

    scene, root = stage_scene(job)

    assert not outside.exists()
    assert scene == root / "shot_a.blend" and scene.read_bytes().startswith(b"BLENDER")
    assert (root / "textures" / "wood.png").read_bytes() == b"texture"  # the rest is staged
    staged = [p for p in (tmp_path / "work").rglob("*") if p.is_file()]
    cache = tmp_path / "work" / "cache"  # the node's cache of scene files
    assert all(
        p.is_relative_to(root) or p.is_relative_to(cache) or p.name == "scene.lock" for p in staged
    )
