"""Job lookups of the ``manage.py`` commands (the generic helpers are ``renderhub.cli``'s)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from django.core.management.base import CommandError

from .models import RenderJob

if TYPE_CHECKING:
    from django.contrib.auth.models import User


def visible_jobs(user: User | None) -> Any:
    return RenderJob.objects.all() if user is None else RenderJob.objects.visible_to(user)


def job_id(value: str) -> int:
    """An argparse type: ``12`` or ``#12`` (as the commands print them)."""
    try:
        number = int(value.removeprefix("#"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a job id like 12 or #12") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a job id like 12 or #12")
    return number


def get_job(pk: int, user: User | None) -> RenderJob:
    """The job if ``user`` may see it; a hidden job reads exactly like a missing one."""
    job = visible_jobs(user).select_related("project", "software", "cluster").filter(pk=pk).first()
    if job is None:
        raise CommandError(f"There is no job #{pk}.")
    return job
