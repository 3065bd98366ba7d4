"""Staging a job's scene on a render node: the scene and exactly the files it needs.

``stage_scene(job)`` lays out, under the job's folder on this node, the scene and every file
``dependencies.analyse_scene`` finds for it (its textures, sequences, libraries and theirs),
keeping their layout relative to their common folder so relative paths hold; nothing else
of the mapping is there, so the sandboxed renderer sees nothing else. Absolute paths a
mapping translates (a scene saved on Windows with ``P:\\projects\\…``) are rewritten to
relative ones in a private copy of each .blend that has them (blender-asset-tracer's
path rewriting); the original in storage is never touched.

Files come through a per-node content-addressed cache (:class:`NodeCache`): a file is
fetched once per version (its size, ETag and time), stored under the SHA-256 of its
bytes and hard-linked into each job's folder, so the many chunks of a job on one node, and
jobs sharing textures, download each file once.

A scene whose references cannot be read is staged as before: its whole folder.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import posixpath
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings

from renderhub import storage
from renderhub.blend import deps
from renderhub.blend.facts import FactsError

from .dependencies import TRANSLATED, DependencyReport, analyse_scene

if TYPE_CHECKING:
    from .models import RenderJob

log = logging.getLogger(__name__)

MAPPED = "_mapped"  # files in another bucket than the scene's, below this folder


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
            index.parent.mkdir(parents=True, exist_ok=True)
            index.write_text(digest)
            return target

    def _object(self, digest: str) -> Path:
        return self.root / "objects" / digest[:2] / digest


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def node_cache() -> NodeCache:
    return NodeCache(Path(settings.RENDER_WORK_DIR) / "cache")


def stage_scene(job: RenderJob | Any) -> tuple[Path, Path]:
    """The staged scene's path and the folder holding it and its files (the one folder
    the renderer may read). Staged once per job on this node, under a lock."""
    base = Path(settings.RENDER_WORK_DIR) / f"job-{job.pk}" / "scene"
    with _locked(base.parent / "scene.lock"):
        marker = base / ".staged"
        if marker.is_file():
            return base / marker.read_text(), base
        report = analyse_scene(job.project, job.scene_url)
        if report.unreadable:
            log.warning(
                "job %s: %s unreadable (%s): its folder is staged",
                job.pk,
                job.scene_url,
                report.unreadable,
            )
            relative = _stage_folder(job, base)
        else:
            relative = _stage_exact(report, base, node_cache())
        marker.write_text(relative)
    return base / relative, base


def layout(urls: list[str]) -> dict[str, str]:
    """Where each URL goes below the staging folder: the scene's bucket relative to the
    files' common folder there; another bucket's files below ``_mapped/<n>/``."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for url in urls:
        scheme, rest = url.split("://", 1)
        bucket = f"{scheme}://{rest.split('/', 1)[0]}" if scheme == "oss" else scheme
        groups.setdefault(bucket, []).append((url, storage.resolve(url)[1]))
    places: dict[str, str] = {}
    for number, members in enumerate(groups.values()):
        folders = [posixpath.dirname(key) for _, key in members]
        common = posixpath.commonpath(folders) if all(folders) else ""
        prefix = "" if number == 0 else f"{MAPPED}/{number}/"
        for url, key in members:
            rest = key[len(common) :].lstrip("/") if common else key
            places[url] = prefix + rest
    return places


def _stage_exact(report: DependencyReport, base: Path, cache: NodeCache) -> str:
    files = report.files()  # the scene first
    places = layout(files)
    for url in files:
        target = _inside(base, places[url])
        _link(cache.fetch(url), target)
    # A private copy of each .blend whose absolute paths a mapping translates, rewritten.
    changes: dict[str, dict[str, str]] = {}
    for dep in report.dependencies:
        if dep.state != TRANSLATED or dep.used_by not in places:
            continue
        blend = _inside(base, places[dep.used_by])
        first = dep.files[0] if dep.files else dep.location
        if first not in places:
            continue
        target = _inside(base, places[first])
        if dep.sequence:  # a sequence or UDIM set: its name as written, beside its files
            target = target.parent / posixpath.basename(dep.path.replace("\\", "/"))
        relative = os.path.relpath(target, blend.parent).replace(os.sep, "/")
        changes.setdefault(dep.used_by, {})[dep.path] = "//" + relative
    for used_by, rewrites in changes.items():
        blend = _inside(base, places[used_by])
        private = blend.with_name(f".{blend.name}.rewrite")
        shutil.copyfile(blend, private)
        try:
            deps.rewrite_references(
                private,
                rewrites,
                timeout=settings.SCENE_FACTS_TIMEOUT,
                max_bytes=settings.SCENE_FACTS_MAX_BYTES,
                max_memory=settings.SCENE_FACTS_MAX_MEMORY,
            )
        except FactsError as exc:
            private.unlink(missing_ok=True)
            raise storage.StorageError(f"could not rewrite the paths in {used_by}: {exc}") from None
        private.replace(blend)  # the link to the cached original goes; the cache keeps it
    return places[report.scene]


def _inside(base: Path, relative: str) -> Path:
    """``base/relative``, refusing anything that would land outside ``base``."""
    clean = storage.normalize_key(relative)
    target = base / clean
    if clean != relative or not target.resolve().is_relative_to(base.resolve()):
        raise storage.InvalidKey(f"{relative!r} would be staged outside the scene's folder")
    return target


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
    for entry in backend.walk(posixpath.dirname(key) + "/"):
        try:
            target = _inside(base, entry.key.removeprefix(root_key))
        except storage.InvalidKey:
            log.warning("job %s: not staging %r: not a plain relative key", job.pk, entry.key)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        backend.download_file(entry.key, target)
    return key.removeprefix(root_key)
