"""Staging a job's scene on a render node: the scene and exactly the files it needs.

``stage_scene(job)`` lays out, under the job's folder on this node, what the job's
manifest (``RenderJob.scene_files``, fixed at submit by :mod:`.scene_manifest`) lists: the
scene and every file it needs, in their layout relative to their common folder, with the
manager's rewritten copy of each .blend whose absolute paths a mapping translates. Nothing
else of the mapping is there, so the sandboxed renderer sees nothing else, and the node
reads no scene to learn what to fetch. A listed file that is gone fails the chunk as a
missing input (:class:`SceneFileGone`), never rendering magenta. A job submitted before
manifests existed gets one made here, once.

Files come through a per-node content-addressed cache (:class:`NodeCache`): a file is
fetched once per version (its size, ETag and time), stored under the SHA-256 of its
bytes and hard-linked into each job's folder, so the many chunks of a job on one node, and
jobs sharing textures, download each file once. :func:`prune_node` keeps the cache under
RENDER_CACHE_MAX_BYTES and removes the staged scenes of jobs this node has not used for
RENDER_SCENE_KEEP_HOURS.

A scene whose references could not be read at submit is staged as before: its whole folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import posixpath
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings

from renderhub import storage
from renderhub.node.agent_session import prune_sessions

from . import scene_manifest

if TYPE_CHECKING:
    from .models import RenderJob

log = logging.getLogger(__name__)

PRUNE_EVERY = 600.0  # seconds between two prunings on one node


class SceneFileGone(storage.StorageError):
    """A file the job's manifest lists is no longer in storage: the chunk cannot render
    what was submitted, on any node."""


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


class NodeCache:
    """Files by the SHA-256 of their bytes under ``root/objects``; ``root/index`` maps a
    stored version of a URL to its digest."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def fetch(self, url: str) -> Path:
        """The cached file holding ``url``'s current bytes (downloaded if not cached)."""
        backend, key = storage.resolve(url)
        entry = backend.stat(key)
        version = f"{url}\0{entry.size}\0{entry.etag}\0{entry.modified}"
        ident = hashlib.sha256(version.encode()).hexdigest()
        index = self.root / "index" / ident[:2] / ident
        with _locked(self.root / "locks" / ident[:2] / ident):
            if index.is_file() and (found := self._object(index.read_text().strip())).is_file():
                os.utime(found)  # last used: pruning removes the longest unused first
                return found
            tmp_dir = self.root / "tmp"
            tmp_dir.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=tmp_dir) as scratch:
                part = Path(scratch) / "part"
                backend.download_file(key, part)
                digest = _sha256(part)
                target = self._object(digest)
                if not target.is_file():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    part.chmod(0o444)  # shared by hard links: never written through one
                    part.replace(target)
                else:  # another URL's bytes: used now, not pruned before it is linked
                    os.utime(target)
            index.parent.mkdir(parents=True, exist_ok=True)
            index.write_text(digest)
            return target

    def _object(self, digest: str) -> Path:
        return self.root / "objects" / digest[:2] / digest

    def prune(self, max_bytes: int) -> int:
        """Remove the longest-unused files no staged scene links to until the cache holds
        at most ``max_bytes``; the bytes removed. Index entries of removed files go too."""
        objects: list[tuple[float, int, Path]] = []
        total = 0
        for path in (self.root / "objects").glob("*/*"):
            try:
                st = path.stat()
            except OSError:
                continue
            total += st.st_size
            # Linked into no job's folder on this node, and not just fetched for one.
            if st.st_nlink == 1 and time.time() - st.st_mtime > PRUNE_EVERY:
                objects.append((st.st_mtime, st.st_size, path))
        removed = 0
        for _, size, path in sorted(objects):
            if total - removed <= max_bytes:
                break
            with _locked(self.root / "locks" / "prune"):
                path.unlink(missing_ok=True)
            removed += size
        if removed:
            for index in (self.root / "index").glob("*/*"):
                with contextlib.suppress(OSError):
                    if not self._object(index.read_text().strip()).is_file():
                        index.unlink()
        return removed


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def node_cache() -> NodeCache:
    return NodeCache(Path(settings.RENDER_WORK_DIR) / "cache")


def prune_node(*, force: bool = False) -> None:
    """At most every PRUNE_EVERY seconds: staged scenes of jobs unused here for
    RENDER_SCENE_KEEP_HOURS (and running no chunk here) go, and the folders of render
    sessions no agent holds any more; then the cache is trimmed."""
    root = Path(settings.RENDER_WORK_DIR)
    stamp = root / "cache" / "pruned"
    now = time.time()
    if not force and stamp.is_file() and now - stamp.stat().st_mtime < PRUNE_EVERY:
        return
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.touch()
    keep = settings.RENDER_SCENE_KEEP_HOURS * 3600
    for folder in root.glob("job-*"):
        if _unused(folder, now - keep):
            with _locked(folder / "scene.lock"):
                # Again under the lock: a chunk may have taken the scene meanwhile.
                if _unused(folder, now - keep):
                    shutil.rmtree(folder / "scene", ignore_errors=True)
    if sessions := prune_sessions(root):
        log.info("removed %d folders of render sessions that ended without clean-up", sessions)
    removed = node_cache().prune(settings.RENDER_CACHE_MAX_BYTES)
    if removed:
        log.info("node cache: removed %d bytes of files no job here uses", removed)


def _unused(folder: Path, since: float) -> bool:
    """Whether the job's staged scene here was last used before ``since`` and no chunk of
    it runs here (its attempt folders are there while it does)."""
    try:
        idle = (folder / "scene" / ".staged").stat().st_mtime < since
        return idle and not any(p.name.startswith("task-") for p in folder.iterdir())
    except OSError:  # nothing staged there, or not a folder
        return False


def stage_scene(job: RenderJob | Any) -> tuple[Path, Path]:
    """The staged scene's path and the folder holding it and its files (the one folder
    the renderer may read). Staged once per job on this node, under a lock."""
    base = Path(settings.RENDER_WORK_DIR) / f"job-{job.pk}" / "scene"
    with _locked(base.parent / "scene.lock"):
        marker = base / ".staged"
        if marker.is_file():
            marker.touch()  # in use: not pruned
            return base / marker.read_text(), base
        manifest = scene_manifest.for_job(job)
        if manifest.get("folder"):
            relative = _stage_folder(job, base)
        else:
            relative = _stage_files(job, manifest, base, node_cache())
        marker.write_text(relative)
    prune_node()
    return base / relative, base


def _stage_files(
    job: RenderJob | Any, manifest: dict[str, Any], base: Path, cache: NodeCache
) -> str:
    folders = scene_manifest.allowed_folders(job)
    for entry in manifest["files"]:
        target = scene_manifest.inside(base, entry["place"])
        if scene_manifest.strays([entry["url"]], folders):  # a link made since submit
            name = entry.get("source") or entry["url"]
            raise SceneFileGone(
                f"{name}, which the scene needs, is now a symbolic link out of the project's "
                "storage mappings; put the file itself back and retry the job"
            )
        try:
            cached = cache.fetch(entry["url"])
        except storage.NotFound:
            name = entry.get("source") or entry["url"]
            raise SceneFileGone(
                f"{name}, which the scene needs, is no longer in storage (it was there when "
                "the job was submitted); put it back and retry the job"
            ) from None
        _link(cached, target)
    return str(manifest["scene"])


def _link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:  # another file system than the cache's
        shutil.copyfile(source, target)


def _stage_folder(job: RenderJob | Any, base: Path) -> str:
    """The scene's whole folder, keeping paths relative to its mapping (a planted key that
    would land outside ``base`` is skipped)."""
    backend, key = storage.resolve(job.scene_url)
    mapping = job.project.mapping_for(job.scene_url)
    _, root_key = storage.resolve(mapping.source) if mapping else (None, "")
    if not backend.exists(key):
        raise storage.NotFound(f"The scene {job.scene_url} does not exist.")
    folders = scene_manifest.allowed_folders(job)
    for entry in backend.walk(posixpath.dirname(key) + "/"):
        try:
            target = scene_manifest.inside(base, entry.key.removeprefix(root_key))
        except storage.InvalidKey:
            log.warning("job %s: not staging %r: not a plain relative key", job.pk, entry.key)
            continue
        if scene_manifest.strays([backend.url_for(entry.key)], folders):
            log.warning("job %s: not staging %r: a link out of the project", job.pk, entry.key)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        backend.download_file(entry.key, target)
    return key.removeprefix(root_key)
