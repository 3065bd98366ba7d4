"""What a job's scene needs on a node, fixed once at submit: ``RenderJob.scene_files``.

The manager reads the scene (``dependencies.analyse_scene``) when the job is submitted and
keeps the outcome on the job, so a node never reads a scene to learn what to fetch:

    {"version": 1,
     "scene": "shots/plane.blend",                        # its place below the staging folder
     "files": [{"url": "local://…/shots/plane.blend",      # what to fetch
                "place": "shots/plane.blend",              # where it goes
                "source": "local://…"},                    # only for a rewritten copy: the original
               …],
     "missing": ["//tex/gone.png (…): image, missing"],    # accepted at submit (allow_missing)
     "folder": false}                                      # true: the scene's references could
                                                          # not be read; its folder is staged

Files keep their layout relative to their common folder, so relative paths hold. Absolute
paths a mapping translates (``P:\\projects\\…``) are rewritten to relative ones once, here,
in a copy of each .blend that has them, stored in the job's ``_logs/scene/`` folder; the
manifest points the node at that copy. A node needs no blend reader, and never touches
the original. A file listed here that is gone when a node stages it fails the chunk,
naming the file: it was there at submit, and rendering without it would paint magenta.
"""

from __future__ import annotations

import contextlib
import logging
import posixpath
import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings

from renderhub import storage
from renderhub.blend import deps
from renderhub.blend.facts import FactsError

from .dependencies import TRANSLATED, DependencyReport, analyse_scene
from .models import RenderJob

log = logging.getLogger(__name__)

VERSION = 1
MAPPED = "_mapped"  # files in another bucket than the scene's, below this folder
REWRITTEN = "_logs/scene/"  # rewritten copies, in the job's output folder


class ManifestError(Exception):
    """The scene's files could not be prepared (a rewrite that failed, storage down)."""


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


def rewrites(report: DependencyReport, places: dict[str, str]) -> dict[str, dict[str, str]]:
    """Per .blend URL, each translated absolute path it holds and the relative path that
    reaches the same file in the staged layout."""
    changes: dict[str, dict[str, str]] = {}
    for dep in report.dependencies:
        if dep.state != TRANSLATED or dep.used_by not in places:
            continue
        first = dep.files[0] if dep.files else dep.location
        if first not in places:
            continue
        target = places[first]
        if dep.sequence:  # a sequence or UDIM set: its name as written, beside its files
            name = posixpath.basename(dep.path.replace("\\", "/"))
            target = posixpath.join(posixpath.dirname(target), name)
        blend_folder = posixpath.dirname(places[dep.used_by]) or "."
        changes.setdefault(dep.used_by, {})[dep.path] = "//" + posixpath.relpath(
            target, blend_folder
        )
    return changes


def prepare(job: RenderJob, report: DependencyReport | None) -> dict[str, Any]:
    """The job's manifest from ``report`` (None: not a .blend, or not read), rewritten
    copies stored. Raises :class:`ManifestError`."""
    if report is None or report.unreadable:
        return {"version": VERSION, "folder": True, "scene": "", "files": [], "missing": []}
    urls = report.files()
    if stray := strays(urls, allowed_folders(job)):
        raise ManifestError(
            f"{', '.join(stray[:10])} lead(s) through a symbolic link out of the project's "
            "storage mappings; the scene cannot use them"
        )
    places = layout(urls)
    copies = {
        url: _rewritten_copy(job, url, places[url], changes)
        for url, changes in rewrites(report, places).items()
    }
    files = []
    for url in urls:
        entry = {"url": url, "place": places[url]}
        if url in copies:
            entry = {"url": copies[url], "place": places[url], "source": url}
        files.append(entry)
    return {
        "version": VERSION,
        "folder": False,
        "scene": places[report.scene],
        "files": files,
        "missing": [d.describe() for d in report.problems],
    }


def for_job(job: RenderJob) -> dict[str, Any]:
    """The job's manifest; one is made (and kept) for a job submitted before manifests were
    made at submit. Raises :class:`storage.StorageError`."""
    if job.scene_files:
        return dict(job.scene_files)
    report = analyse_scene(job.project, job.scene_url)
    if report.unreadable:
        log.warning("job %s: %s unreadable (%s)", job.pk, job.scene_url, report.unreadable)
    try:
        manifest = prepare(job, report)
    except ManifestError as exc:
        raise storage.StorageError(str(exc)) from None
    RenderJob.objects.filter(pk=job.pk, scene_files__isnull=True).update(scene_files=manifest)
    return manifest


def _rewritten_copy(job: RenderJob, url: str, place: str, changes: dict[str, str]) -> str:
    target = storage.join(job.output_url, REWRITTEN + place)
    try:
        backend, key = storage.resolve(url)
        with tempfile.TemporaryDirectory(prefix="renderhub-rewrite-") as scratch:
            copy = Path(scratch) / "scene.blend"
            backend.download_file(key, copy)
            deps.rewrite_references(
                copy,
                changes,
                timeout=settings.SCENE_FACTS_TIMEOUT,
                max_bytes=settings.SCENE_FACTS_MAX_BYTES,
                max_memory=settings.SCENE_FACTS_MAX_MEMORY,
            )
            out_backend, out_key = storage.resolve(target)
            out_backend.upload_file(copy, out_key)
    except (FactsError, storage.StorageError) as exc:
        name = posixpath.basename(place)
        raise ManifestError(f"could not rewrite the absolute paths in {name}: {exc}") from None
    return target


def allowed_folders(job: RenderJob | Any) -> list[Path]:
    """The real folders on local storage a job's files may be in: its project's mappings
    and its rewritten copies. A URL inside them by name may still be elsewhere on disk."""
    sources = [m.source for m in job.project.mappings.all()]
    if getattr(job, "output_url", ""):
        sources.append(storage.join(job.output_url, REWRITTEN))
    if getattr(job, "movie_of_id", None):  # a preview movie encodes its render job's frames,
        sources.append(job.output_url)  # which are in the output folder the two jobs share
    folders = []
    for source in sources:
        with contextlib.suppress(storage.StorageError):
            backend, key = storage.resolve(source)
            if (path := backend.local_path(key)) is not None:
                folders.append(path)
    return folders


def strays(urls: list[str], folders: list[Path]) -> list[str]:
    """The URLs of local storage that really are (through a symbolic link) outside
    ``folders``: another project's files under a name in this one's mapping."""
    found = []
    for url in urls:
        try:
            backend, key = storage.resolve(url)
            path = backend.local_path(key)
        except storage.StorageError:
            found.append(url)  # a link out of the storage root
            continue
        if path is not None and not any(path.is_relative_to(f) for f in folders):
            found.append(url)
    return found


def originals(manifest: dict[str, Any] | None) -> list[str]:
    """The storage URLs a job renders from (a rewritten copy counts as its original)."""
    if not manifest:
        return []
    return [f.get("source") or f["url"] for f in manifest.get("files", [])]


def canonical(url: str) -> str | None:
    """One spelling per stored file (escapes, ``./`` and doubled slashes undone, and on
    local disk symbolic links followed: ``current/`` linked to ``v3/``), to compare URLs
    written differently; None for a URL storage does not take."""
    try:
        backend, key = storage.resolve(url)
        path = backend.local_path(key)
        return path.as_uri() if path is not None else backend.url_for(key)
    except storage.StorageError:
        return None


def inside(base: Path, relative: str) -> Path:
    """``base/relative``, refusing anything that would land outside ``base``."""
    clean = storage.normalize_key(relative)
    target = base / clean
    if clean != relative or not target.resolve().is_relative_to(base.resolve()):
        raise storage.InvalidKey(f"{relative!r} would be staged outside the scene's folder")
    return target
