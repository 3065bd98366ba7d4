"""Issue 14, reviewed: pruning a node never takes a file from under a chunk about to use it.

``prune_node`` removes the staged scene of a job unused here for RENDER_SCENE_KEEP_HOURS.
It judged the job unused, then waited for the job's staging lock: a chunk of that job could
take the lock meanwhile, find the scene staged (marking it in use) and go on to render, and
the pruner, once it had the lock, deleted the folder the chunk was about to render from.

The node cache keeps one object per content. A file fetched for a new URL whose bytes an
old, unlinked object already holds was handed back with that object's old time, so a
pruning right then removed it before the chunk could link it into its folder.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from jobs import scene_staging

pytestmark = pytest.mark.django_db


def _scene_job(project: Any, storage_root: Path, storage_url: str) -> SimpleNamespace:
    (storage_root / "scenes").mkdir(parents=True, exist_ok=True)
    (storage_root / "scenes" / "s.blend").write_bytes(b"BLENDER-v304 a scene")
    url = storage_url + "scenes/s.blend"
    manifest = {"version": 1, "folder": False, "scene": "s.blend", "missing": []}
    manifest["files"] = [{"url": url, "place": "s.blend"}]
    return SimpleNamespace(pk=4711, project=project, scene_url=url, scene_files=manifest)


def test_a_scene_marked_in_use_while_the_pruner_waits_for_its_lock_is_kept(
    project: Any,
    storage_root: Path,
    storage_url: str,
    settings: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings.RENDER_WORK_DIR = tmp_path / "work"
    settings.RENDER_SCENE_KEEP_HOURS = 1
    job = _scene_job(project, storage_root, storage_url)
    scene, root = scene_staging.stage_scene(job)
    old = time.time() - 7200  # unused here for two hours
    os.utime(root / ".staged", (old, old))

    real = scene_staging._locked
    waiting = threading.Event()

    @contextmanager
    def watched(path: Path) -> Iterator[None]:
        if path.name == "scene.lock":
            waiting.set()  # the pruner has judged the scene and wants its lock
        with real(path):
            yield

    monkeypatch.setattr(scene_staging, "_locked", watched)
    with real(root.parent / "scene.lock"):  # a chunk of the job, staging it
        pruner = threading.Thread(target=scene_staging.prune_node, kwargs={"force": True})
        pruner.start()
        assert waiting.wait(10)
        time.sleep(0.3)  # blocked on the lock by now
        (root / ".staged").touch()  # what stage_scene does under the lock: in use
    # The chunk has its scene and goes on to make its attempt folder and render.
    pruner.join(10)

    assert not pruner.is_alive()
    assert scene.read_bytes() == b"BLENDER-v304 a scene"


def test_an_old_object_handed_out_for_a_new_url_is_not_pruned_before_it_is_linked(
    storage_root: Path, storage_url: str, tmp_path: Path
) -> None:
    (storage_root / "scenes").mkdir(parents=True, exist_ok=True)
    for name in ("a.png", "b.png"):
        (storage_root / "scenes" / name).write_bytes(b"the same texture twice")
    cache = scene_staging.NodeCache(tmp_path / "cache")
    first = cache.fetch(storage_url + "scenes/a.png")
    old = time.time() - 2 * scene_staging.PRUNE_EVERY
    os.utime(first, (old, old))  # long unused: no staged scene links it any more

    second = cache.fetch(storage_url + "scenes/b.png")  # same bytes, same object
    assert second == first
    cache.prune(0)  # a pruning in another worker, before the chunk links it

    assert second.read_bytes() == b"the same texture twice"
