"""What a request may see: the same rules as the pages, narrowed by a project token.

Everything project-owned is looked up through these querysets, so another project's
object is simply not found (404): its existence is never confirmed by a 403.
"""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import QuerySet
from rest_framework import exceptions
from rest_framework.request import Request

from jobs.models import RenderJob
from projects.models import Project

from .models import ApiToken


def request_user(request: Request) -> User:
    """The signed-in user of an API request (every API view requires one, IsAuthenticated)."""
    user = request.user
    if isinstance(user, AnonymousUser):
        raise exceptions.NotAuthenticated()
    return user


def visible_projects(request: Request) -> QuerySet[Project]:
    projects = Project.objects.visible_to(request.user)
    token = request.auth
    if isinstance(token, ApiToken) and token.project_id is not None:
        projects = projects.filter(pk=token.project_id)
    return projects


def visible_jobs(request: Request) -> QuerySet[RenderJob]:
    return RenderJob.objects.filter(project__in=visible_projects(request))
