"""Creating a project from the pages: its own folder, a scenes mapping, its creator a member.

Users granted ``projects.add_project`` (no staff flag needed) start a project without
touching storage URLs: it gets ``<PROJECTS_STORAGE_URL><name>/`` with ``scenes/`` mapped
on the nodes at /mnt/scenes/ (writable, so members can upload into it) and ``output/`` as
its output prefix. The folder passes the same storage rules as the admin's
(:func:`projects.services.check_storage`): outside ``STORAGE_ALLOWED_PREFIXES`` only a
superuser may create it, it may not overlap another project's storage, and it must hold
no files yet (a deleted project's are not handed on).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction

from renderhub import storage

from .models import Project, StorageMapping
from .services import check_storage

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from images.models import ComputeImage

ADD_PERMISSION = "projects.add_project"
SCENES_MOUNT = "/mnt/scenes/"


def projects_root() -> str:
    """Where new projects' folders go."""
    return settings.PROJECTS_STORAGE_URL or storage.join(settings.STORAGE_URL, "projects/")


def folder_for(name: str) -> str:
    return storage.join(projects_root(), f"{name}/")


@transaction.atomic
def create_project(user: User, name: str, image: ComputeImage, description: str = "") -> Project:
    """A new project named ``name`` in its own folder, with ``user`` as its first member.

    Raises PermissionDenied without ``projects.add_project``, ValidationError (by field)
    for a taken or bad name, or a folder the user may not use.
    """
    if not user.has_perm(ADD_PERMISSION):
        raise PermissionDenied("Creating projects needs the “Can add project” permission.")
    if Project.objects.filter(name=name).exists():
        raise ValidationError({"name": f"A project named {name} exists already."})
    folder = folder_for(name)
    try:
        check_storage(user, folder, "The project folder")
    except ValidationError as exc:
        raise ValidationError({"name": exc.messages}) from None
    _refuse_used_folder(folder)
    project = Project(
        name=name,
        description=description,
        image=image,
        output_prefix=storage.join(folder, "output/"),
    )
    project.full_clean()
    try:
        with transaction.atomic():  # a savepoint: the twin request's insert won the race
            project.save()
    except IntegrityError:
        raise ValidationError({"name": f"A project named {name} exists already."}) from None
    mapping = StorageMapping(
        project=project,
        source=storage.join(folder, "scenes/"),
        destination=SCENES_MOUNT,
        writable=True,
    )
    mapping.full_clean()
    mapping.save()
    project.members.add(user)
    return project


def _refuse_used_folder(folder: str) -> None:
    """A folder holding files already (a deleted project's scenes and renders, or files an
    administrator keeps there) is not handed to whoever names a new project after it."""
    try:
        backend, key = storage.resolve(folder)
        held = backend.list(key, delimiter=None, limit=1).entries
    except storage.StorageError as exc:
        raise ValidationError({"name": f"The project folder {folder}: {exc}"}) from None
    if held:
        raise ValidationError(
            {
                "name": f"The folder {folder} holds files already (perhaps a deleted "
                "project's); choose another name, or ask an administrator to clear it or "
                "set up a project on it in the admin."
            }
        )
