"""Project rules that depend on who asks: which storage a user may point a project at, and
who may change its members. The admin calls these (as would any API that edits projects).

A project's output prefix and mapping sources decide what its members read and write, and
render nodes mount the mappings: mapping the storage root or another project's folder
would hand every project's files to the project's members. So only superusers choose
storage freely; other staff stay inside ``STORAGE_ALLOWED_PREFIXES`` (empty: nowhere) and
outside other projects' storage. Members are changed by superusers and by users granted
the ``projects.manage_members`` permission. The node temp output dir is a folder on the
render machines (on the local worker, this one) where renderers write: only superusers
choose a Linux one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ValidationError

from images.choices import Platform
from renderhub import storage

from .models import Project, StorageMapping

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser
    from django.contrib.auth.models import User as AuthUser

    User = AuthUser | AnonymousUser

MEMBERS_PERMISSION = "projects.manage_members"


def _overlap(a: str, b: str) -> bool:
    return storage.is_prefix_of(a, b) or storage.is_prefix_of(b, a)


def _other_projects_storage(url: str, project: Project | None) -> str | None:
    """The name of another project whose output prefix or mappings overlap ``url``."""
    others = Project.objects.all()
    mappings = StorageMapping.objects.select_related("project")
    if project is not None and project.pk:
        others, mappings = others.exclude(pk=project.pk), mappings.exclude(project=project)
    for name, prefix in others.values_list("name", "output_prefix"):
        if _overlap(prefix, url):
            return name
    for mapping in mappings:
        if _overlap(mapping.source, url):
            return mapping.project.name
    return None


def check_storage(user: User, url: str, what: str, project: Project | None = None) -> None:
    """Raise ValidationError unless ``user`` may point ``project`` at the folder ``url``
    (``what`` names the field in the message, e.g. "The output prefix")."""
    if user.is_superuser:
        return
    allowed = list(settings.STORAGE_ALLOWED_PREFIXES)
    if not allowed:
        raise ValidationError(
            f"{what} can only be set by a superuser: storage folders decide what every "
            "member reads and writes (an administrator can open folders to staff with "
            "STORAGE_ALLOWED_PREFIXES)."
        )
    try:
        inside = any(storage.is_prefix_of(prefix, url) for prefix in allowed)
        other = _other_projects_storage(url, project) if inside else None
    except storage.StorageError:
        return  # not a storage URL at all: the model's own validation says so
    if not inside:
        raise ValidationError(
            f"{what} {url} is outside the storage open to staff: use a folder inside "
            f"{', '.join(allowed)} (or ask a superuser)."
        )
    if other:
        raise ValidationError(
            f"{what} {url} overlaps the storage of project {other}; only a superuser can "
            "share folders between projects."
        )


def check_node_output_dir(user: User, platform: str) -> None:
    """Raise ValidationError unless ``user`` may change a project's node temp output dir.
    A Windows path names no folder here: staff set those."""
    if not user.is_superuser and platform != Platform.WINDOWS:
        raise ValidationError(
            "The node temp output dir can only be set by a superuser: it is a folder on the "
            "render machines (this one, for the local worker) where renderers write."
        )


def check_members_change(user: User, before: set[int], after: set[int]) -> None:
    """Raise ValidationError when ``user`` changes the members without the right."""
    if before == after or user.has_perm(MEMBERS_PERMISSION):  # superusers have every perm
        return
    raise ValidationError(
        "Only superusers and users with the “Can add and remove project members” "
        "permission can change a project's members."
    )


def check_member(user: User, project: Project | None) -> None:
    """Only a project's members (and superusers) tie a token or a webhook to it."""
    if project is not None and not project.is_member(user):
        raise ValidationError({"project": f"{user} is not a member of project {project}."})


@dataclass(frozen=True)
class StorageRoot:
    url: str
    note: str


def storage_roots(user: User) -> list[StorageRoot]:
    """The storage folders ``user`` may point a project at, to show beside the fields where
    storage URLs are typed. Paths on this machine are installation detail: superusers see the
    local root and OSS; other staff the prefixes opened to them; everyone else nothing."""
    if user.is_superuser:
        roots = [
            StorageRoot(
                Path(settings.LOCAL_STORAGE_ROOT).as_uri() + "/",
                "local disk (LOCAL_STORAGE_ROOT): any folder below it",
            )
        ]
        if settings.OSS_ENDPOINT:
            roots.append(
                StorageRoot(
                    "oss://<bucket>/",
                    f"any bucket the OSS AccessKey reaches on {settings.OSS_ENDPOINT}",
                )
            )
        return roots
    if not user.is_staff:
        return []
    return [
        StorageRoot(prefix, "open to staff (STORAGE_ALLOWED_PREFIXES)")
        for prefix in settings.STORAGE_ALLOWED_PREFIXES
    ]


def project_storage(user: User) -> list[tuple[str, list[str]]]:
    """``(project name, [output prefix, mapping sources…])`` of the projects ``user`` sees:
    what a member may type where a project's storage is asked for (workflow folders)."""
    projects = Project.objects.visible_to(user).prefetch_related("mappings")
    return [(p.name, [p.output_prefix, *(m.source for m in p.mappings.all())]) for p in projects]
