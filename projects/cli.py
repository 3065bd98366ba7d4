"""Project lookups of the ``manage.py`` commands."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.core.management.base import CommandError

from .models import Project

if TYPE_CHECKING:
    from django.contrib.auth.models import User


def get_project(name: str, user: User | None) -> Project:
    """The project if ``user`` may see it; the error lists only what they may see."""
    projects = Project.objects.all() if user is None else Project.objects.visible_to(user)
    project = projects.select_related("image").filter(name=name).first()
    if project is None:
        names = ", ".join(projects.values_list("name", flat=True)) or "none"
        raise CommandError(f"There is no project named {name!r} (projects: {names}).")
    return project
