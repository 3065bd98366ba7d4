"""The storage browser of the submit page: a project's mapped folders, one page at a time.

No HTTP here: ``projects.views.browser`` and the submit page (``jobs.views``) call it.

Every path arrives as a storage URL in the query string and is checked on the server:
storage key normalisation rejects ``..`` and the like, and ``storage.is_prefix_of`` keeps
it inside one of the project's mapped prefixes. The browser never lists anything else.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from images.models import Software
from renderhub import storage
from renderhub.cli import parse_id

from .models import Project, StorageMapping

PAGE_SIZE = 200


class OutsideMappings(Exception):
    """A path that is not a folder inside one of the project's mapped prefixes."""


@dataclass
class File:
    name: str
    url: str
    size: int | None
    label: str  # the path below its mapped folder, for the list of selected scenes


@dataclass
class Folder:
    """One page of a folder: sub-folders, scene files, breadcrumbs and the next page's marker."""

    project: Project
    url: str  # "" lists the mapped prefixes themselves
    crumbs: list[tuple[str, str]] = field(default_factory=list)
    folders: list[tuple[str, str]] = field(default_factory=list)
    files: list[File] = field(default_factory=list)
    hidden: int = 0  # files on this page that are not scenes of the chosen software
    marker: str = ""
    next_marker: str | None = None
    error: str = ""
    writable: bool = False  # the folder's mapping is writable: members may upload here
    in_submit: bool = False  # shown on the submit page (links keep the user there)
    open_to_uploads: set[str] = field(default_factory=set)  # writable mapped folders


def mapping_holding(mappings: list[StorageMapping], url: str) -> StorageMapping:
    """The longest mapped prefix holding ``url``; raises OutsideMappings."""
    try:
        holders = [m for m in mappings if storage.is_prefix_of(m.source, url)]
    except storage.StorageError as exc:
        raise OutsideMappings(str(exc)) from None
    if not holders:
        raise OutsideMappings(f"{url} is outside this project's storage mappings.")
    return max(holders, key=lambda m: len(m.source))


def _crumbs(mapping: StorageMapping, url: str) -> list[tuple[str, str]]:
    crumbs = [("Mapped folders", ""), (mapping.source, mapping.source)]
    rest = url[len(mapping.source) :].strip("/") if url.startswith(mapping.source) else ""
    current = mapping.source
    for part in rest.split("/") if rest else []:
        current = storage.join(current, part + "/")
        crumbs.append((part, current))
    return crumbs


def browse(
    project: Project, url: str, marker: str = "", suffixes: list[str] | None = None
) -> Folder:
    """List one page of ``url`` (a folder URL inside a mapping); raises OutsideMappings."""
    mappings = list(project.mappings.all())
    if not url:
        return Folder(
            project,
            "",
            crumbs=[("Mapped folders", "")],
            folders=[(m.source, m.source) for m in mappings],
            open_to_uploads={m.source for m in mappings if m.writable},
        )
    if not url.endswith("/"):
        url += "/"
    mapping = mapping_holding(mappings, url)
    folder = Folder(
        project, url, crumbs=_crumbs(mapping, url), marker=marker, writable=mapping.writable
    )
    try:
        backend, prefix = storage.resolve(url)
        mapped_key = storage.resolve(mapping.source)[1]
        # A marker from another folder would list outside this one: ignore it.
        listing = backend.list(
            prefix, marker=marker if marker.startswith(prefix) else None, limit=PAGE_SIZE
        )
    except storage.InvalidKey as exc:
        raise OutsideMappings(str(exc)) from None
    except storage.StorageError as exc:
        folder.error = f"Could not list this folder: {exc}"
        return folder
    for entry in listing.entries:
        if entry.is_dir:
            folder.folders.append((entry.name, backend.url_for(entry.key)))
        elif not suffixes or entry.key.lower().endswith(tuple(suffixes)):
            label = entry.key.removeprefix(mapped_key)
            folder.files.append(File(entry.name, backend.url_for(entry.key), entry.size, label))
        else:
            folder.hidden += 1
    folder.next_marker = listing.next_marker
    return folder


def scene_labels(project: Project, urls: list[str]) -> list[tuple[str, str]]:
    """``(url, label)`` for scenes already chosen, labelled like the browser labels them."""
    mappings = list(project.mappings.all())
    labelled = []
    for url in urls:
        try:
            mapping = mapping_holding(mappings, url)
            label = storage.resolve(url)[1].removeprefix(storage.resolve(mapping.source)[1])
        except (OutsideMappings, storage.StorageError):
            label = url
        labelled.append((url, label))
    return labelled


def software_suffixes(
    project: Project, software_id: str | None
) -> tuple[Software | None, list[str]]:
    """The chosen software (on the project's image) and the scene suffixes it opens."""
    software = None
    if pk := parse_id(software_id):
        software = Software.objects.filter(pk=pk, image_id=project.image_id).first()
    return software, (software.suffixes if software else [])
