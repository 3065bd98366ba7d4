"""What a scene needs, found and classified before it renders: ``analyse_scene``.

Blender renders a missing texture magenta and says nothing, so a scene's references
(``renderhub.blend.deps``: images, sequences, UDIM sets, libraries followed recursively,
sounds, clips, fonts, volumes, caches) are each given a state:

- **in storage**: a relative path that lands inside one of the project's mappings, there;
- **translated**: an absolute path a mapping stands for (its node path, or a path it has on
  artists' machines, like ``P:\\projects\\``), there in storage;
- **missing**: where it should be, nothing is;
- **outside**: a relative path that lands outside every mapping of the project (another
  project's folder, or above the storage root): never staged;
- **untranslated**: an absolute path no mapping stands for (``C:\\Users\\…``, ``/etc/passwd``).

The last three are problems: the submission is refused, naming them, unless the user
accepts rendering without them. A local scene (the CLI, before uploading) is analysed on
its own disk: a relative path is **found** there or missing.
"""

from __future__ import annotations

import logging
import os
import posixpath
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote

from django.conf import settings

from renderhub import storage
from renderhub.blend import deps
from renderhub.blend.facts import FactsError

if TYPE_CHECKING:
    from projects.models import Project, StorageMapping

log = logging.getLogger(__name__)

IN_STORAGE, TRANSLATED, FOUND = "in storage", "translated", "found"
MISSING, OUTSIDE, UNTRANSLATED = "missing", "outside", "untranslated"
PROBLEMS = (MISSING, OUTSIDE, UNTRANSLATED)
STATE_TEXT = {
    IN_STORAGE: "in storage",
    TRANSLATED: "absolute path translated by a mapping",
    FOUND: "found on this disk",
    MISSING: "missing",
    OUTSIDE: "outside the project's mappings",
    UNTRANSLATED: "absolute path nothing translates",
}
MAX_BLEND_FILES = 200  # the scene and the libraries it links, followed recursively
MAX_SEQUENCE_FILES = 100_000
# Names compared with sequence and UDIM patterns in one analysis, all references together:
# a file naming one big folder thousands of ways must not keep the manager busy for minutes.
MAX_NAMES_MATCHED = 1_000_000


class _TooManyNames(Exception):
    pass


@dataclass
class _Scan:
    """One analysis' folder listings (each folder listed once) and its matching budget."""

    listings: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    matched: int = 0

    def names(self, place: _Place, folder: str) -> list[str]:
        key = (type(place).__name__, folder)
        if key not in self.listings:
            self.listings[key] = place.names(folder)
        names = self.listings[key]
        self.matched += len(names)
        if self.matched > MAX_NAMES_MATCHED:
            raise _TooManyNames
        return names


@dataclass
class Dependency:
    kind: str  # renderhub.blend.deps' kinds: image, library, UDIM set…
    path: str  # as Blender wrote it
    used_by: str  # the .blend that references it (a URL or a local path)
    owner: str  # the data-block using it
    state: str
    location: str = ""  # where it is (or would be): a storage URL or a local path
    files: list[str] = field(default_factory=list)  # every file it stands for, found
    sequence: bool = False  # a numbered sequence or a UDIM set: its name is a pattern

    @property
    def problem(self) -> bool:
        return self.state in PROBLEMS

    @property
    def state_text(self) -> str:
        return STATE_TEXT[self.state]

    @property
    def used_by_name(self) -> str:
        """The file name of the .blend that references it (a library's, for its files)."""
        name = posixpath.basename(self.used_by.replace("\\", "/"))
        return unquote(name) if self.used_by.startswith("file://") else name

    def describe(self) -> str:
        where = f" ({self.location})" if self.location and self.location != self.path else ""
        return f"{self.path}{where}: {self.kind}, {self.state_text}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "path": self.path,
            "used_by": self.used_by,
            "owner": self.owner,
            "state": self.state,
            "state_text": self.state_text,
            "location": self.location,
            "files": len(self.files),
        }


@dataclass
class DependencyReport:
    scene: str
    dependencies: list[Dependency] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # libraries whose references went unread
    unreadable: str = ""  # why the scene's own references could not be read

    @property
    def problems(self) -> list[Dependency]:
        return [d for d in self.dependencies if d.problem]

    @property
    def label(self) -> str:
        """The scene's file name as users know it (a file URL's is percent-encoded)."""
        name = posixpath.basename(self.scene.replace("\\", "/"))
        return unquote(name) if self.scene.startswith("file://") else name

    def files(self) -> list[str]:
        """The scene and every file it needs that is there, each once, in order."""
        seen = dict.fromkeys([self.scene])
        for dep in self.dependencies:
            if not dep.problem:
                seen.update(dict.fromkeys(dep.files))
        return list(seen)

    def problem_text(self, limit: int = 20) -> str:
        lines = [d.describe() for d in self.problems[:limit]]
        if len(self.problems) > limit:
            lines.append(f"and {len(self.problems) - limit} more")
        return "; ".join(lines)


class _Place(Protocol):
    def folder(self, location: str) -> str: ...
    def name(self, location: str) -> str: ...
    def below(self, folder: str, relative: str) -> str | None: ...
    def contains(self, location: str) -> bool: ...
    def exists(self, location: str) -> bool: ...
    def names(self, folder: str) -> list[str]: ...
    def join(self, folder: str, name: str) -> str: ...
    def local(self, location: str) -> AbstractContextManager[Path]: ...


class StoragePlace:
    """Locations are storage URLs; only the project's mappings count as inside."""

    def __init__(self, mappings: list[StorageMapping]) -> None:
        self.sources = [m.source for m in mappings]

    def folder(self, location: str) -> str:
        return location.rsplit("/", 1)[0] + "/"

    def name(self, location: str) -> str:
        return posixpath.basename(storage.resolve(location)[1])

    def below(self, folder: str, relative: str) -> str | None:
        backend, key = storage.resolve(folder)
        target = posixpath.normpath(posixpath.join(key, relative))
        if target == ".." or target.startswith(("../", "/")):
            return None  # above the storage root
        try:
            return backend.url_for(storage.normalize_key(target))
        except storage.StorageError:
            return None  # above the storage root, or not a key storage takes

    def contains(self, location: str) -> bool:
        return any(storage.is_prefix_of(source, location) for source in self.sources)

    def exists(self, location: str) -> bool:
        backend, key = storage.resolve(location)
        return backend.exists(key)

    def names(self, folder: str) -> list[str]:
        backend, key = storage.resolve(folder)
        names: list[str] = []
        marker = None
        while len(names) < MAX_SEQUENCE_FILES:
            page = backend.list(key, marker=marker)
            names += [e.name for e in page.entries if not e.is_dir]
            if (marker := page.next_marker) is None:
                break
        return names

    def join(self, folder: str, name: str) -> str:
        return storage.join(folder, name)

    def local(self, location: str) -> AbstractContextManager[Path]:
        from .scene_checks import local_copy

        return local_copy(location)


class DiskPlace:
    """Locations are absolute paths on this machine (a scene not uploaded yet)."""

    def folder(self, location: str) -> str:
        return str(Path(location).parent)

    def name(self, location: str) -> str:
        return Path(location).name

    def below(self, folder: str, relative: str) -> str | None:
        return os.path.normpath(Path(folder) / relative)

    def contains(self, location: str) -> bool:
        return True  # the user's own files: uploading them is theirs to do

    def exists(self, location: str) -> bool:
        return Path(location).is_file()

    def names(self, folder: str) -> list[str]:
        try:
            return sorted(e.name for e in os.scandir(folder) if e.is_file())[:MAX_SEQUENCE_FILES]
        except OSError:
            return []

    def join(self, folder: str, name: str) -> str:
        return str(Path(folder) / name)

    @contextmanager
    def local(self, location: str) -> Iterator[Path]:
        yield Path(location)


def analyse_scene(
    project: Project | None,
    scene: str | Path,
    *,
    local: Path | None = None,
    reading: deps.SceneReading | None = None,
) -> DependencyReport:
    """Every file the scene (a storage URL, or a local path) needs, with its state; without
    a project, no mapping translates an absolute path. ``local``: a copy of the scene
    already fetched; ``reading``: what was already read of it (its references)."""
    mappings = list(project.mappings.all()) if project is not None else []
    stored = StoragePlace(mappings)
    place: _Place = DiskPlace() if isinstance(scene, Path) else stored
    start = str(scene.resolve()) if isinstance(scene, Path) else scene
    report = DependencyReport(scene=start)
    prefixes = _prefixes(mappings)
    todo: list[tuple[str, _Place]] = [(start, place)]
    read: set[str] = set()
    scan = _Scan()
    try:
        _follow(report, todo, read, scan, stored, prefixes, start, local, reading)
    except _TooManyNames:
        report.dependencies = []
        report.unreadable = (
            f"its references name more than {MAX_NAMES_MATCHED:,} files in sequence "
            "folders to compare; they were not checked"
        )
        report.warnings.append(f"{report.label}: {report.unreadable}.")
        return report
    if todo:
        report.warnings.append(f"Only the first {MAX_BLEND_FILES} .blend files were read.")
    return report


def _follow(
    report: DependencyReport,
    todo: list[tuple[str, _Place]],
    read: set[str],
    scan: _Scan,
    stored: StoragePlace,
    prefixes: list[tuple[str, str]],
    start: str,
    local: Path | None,
    reading: deps.SceneReading | None,
) -> None:
    """Read the scene and the libraries it links, recursively, classifying each reference."""
    while todo and len(read) < MAX_BLEND_FILES:
        blend, where = todo.pop(0)
        if blend in read:
            continue
        read.add(blend)
        try:
            if reading is not None and blend == start:
                references = reading.references()
            else:
                references = _references(blend, where, local if blend == start else None)
        except (FactsError, storage.StorageError) as exc:
            if blend == start:  # the scene facts' check says so already at submit
                report.unreadable = str(exc)
            else:
                report.warnings.append(f"{blend}: its references could not be read ({exc}).")
            continue
        for ref in references:
            dep, dep_place = _classify(ref, blend, where, stored, prefixes, scan)
            report.dependencies.append(dep)
            if ref.kind == deps.LIBRARY and not dep.problem:
                todo.append((dep.location, dep_place))


def _references(blend: str, where: _Place, local: Path | None) -> list[deps.Reference]:
    with nullcontext(local) if local else where.local(blend) as path:
        return deps.read_references(
            path,
            timeout=settings.SCENE_FACTS_TIMEOUT,
            max_bytes=settings.SCENE_FACTS_MAX_BYTES,
            max_memory=settings.SCENE_FACTS_MAX_MEMORY,
        )


def _prefixes(mappings: list[StorageMapping]) -> list[tuple[str, str]]:
    """(path, storage folder) pairs: each mapping's node path and its artists' paths,
    longest first so the most specific wins."""
    pairs = [(m.destination, m.source) for m in mappings if m.destination]
    for mapping in mappings:
        pairs += [(p, mapping.source) for p in mapping.artist_path_list()]
    return sorted(pairs, key=lambda pair: len(pair[0]), reverse=True)


def _classify(
    ref: deps.Reference,
    blend: str,
    where: _Place,
    stored: StoragePlace,
    prefixes: list[tuple[str, str]],
    scan: _Scan,
) -> tuple[Dependency, _Place]:
    dep = Dependency(ref.kind, ref.path, blend, ref.owner[2:] or ref.owner, UNTRANSLATED)
    dep.sequence = ref.sequence
    place: _Place = where
    if deps.is_relative(ref.path):
        location = where.below(where.folder(blend), deps.relative_part(ref.path))
        if location is None or not where.contains(location):
            dep.state, dep.location = OUTSIDE, location or ""
            return dep, place
        found_state = FOUND if isinstance(where, DiskPlace) else IN_STORAGE
    else:
        translated = deps.translate(ref.path, prefixes)
        if translated is None:
            return dep, place
        source, rest = translated
        try:
            location = storage.join(source, rest)
        except storage.StorageError:
            dep.state = OUTSIDE  # '..' out of the mapping
            return dep, place
        place, found_state = stored, TRANSLATED
    dep.location = location
    try:
        dep.files = _files(ref, location, place, scan)
    except storage.StorageError as exc:
        log.warning("could not check %s: %s", location, exc)
        dep.files = []
    dep.state = found_state if dep.files else MISSING
    return dep, place


def _files(ref: deps.Reference, location: str, place: _Place, scan: _Scan) -> list[str]:
    name = place.name(location)
    pattern = deps.sequence_pattern(name) if ref.sequence else None
    if pattern is None:
        return [location] if place.exists(location) else []
    folder = place.folder(location)
    return [place.join(folder, n) for n in scan.names(place, folder) if pattern.match(n)]


def check_scene_files(project: Project, scenes: list[str]) -> list[DependencyReport]:
    """The files each scene URL needs (the page's panel, the API). Raises ValueError naming
    a scene that is not a URL inside the project's mappings: nothing else is read."""
    sources = [m.source for m in project.mappings.all()]
    for url in scenes:
        try:
            inside = any(storage.is_prefix_of(source, url) for source in sources)
        except storage.StorageError as exc:
            raise ValueError(f"{url}: {exc}") from None
        if not inside:
            raise ValueError(f"{url} is outside this project's storage mappings.")
    return [analyse_scene(project, url) for url in scenes]


def report_dict(report: DependencyReport) -> dict[str, Any]:
    return {
        "scene": report.scene,
        "ok": not report.problems and not report.unreadable,
        "unreadable": report.unreadable,
        "dependencies": [d.as_dict() for d in report.dependencies],
        "problems": len(report.problems),
        "warnings": report.warnings,
    }
