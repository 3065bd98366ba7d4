"""Conditional GETs of the job list and of one job: a client polling with the ETag it got
(``If-None-Match``) gets a bodiless 304 from one query while nothing it shows has moved.

The versions are the staff pages' (``jobs.live``), asked of the API's own queryset, so a
token scoped to a project, or a user who may not see a job, gets the same 404 or list as
without the header. The list's version covers every job its filters select (and the query
string: each page of the cursor has its own), the detail's the job and its chunks. Neither
moves with the clock: a client holding a 304 counts ``duration`` on from ``started_at`` and
the ETA down to ``eta_at``; ``duration`` and ``eta_seconds`` in a body are as of its
``Date``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jobs import live
from renderhub.htmx import not_modified, tag

from .permissions import request_user

if TYPE_CHECKING:
    from django.db.models import QuerySet
    from rest_framework.request import Request

    from jobs.models import RenderJob


class ConditionalJobsMixin:
    """For RenderJobViewSet: ``list`` and ``retrieve`` answer ``If-None-Match``."""

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Any:
        jobs = self.get_queryset()  # type: ignore[attr-defined]
        rows: QuerySet[RenderJob] = self.filter_queryset(jobs)  # type: ignore[attr-defined]
        etag = live.jobs_version(request_user(request), rows, f"api {request.get_full_path()}")
        if unchanged := not_modified(request, etag):
            return unchanged
        return tag(super().list(request, *args, **kwargs), etag)  # type: ignore[misc]

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Any:
        pk = str(kwargs.get("pk", ""))
        jobs = self.get_queryset().prefetch_related(None)  # type: ignore[attr-defined]
        etag = live.job_version(request_user(request), int(pk), jobs) if pk.isdigit() else None
        if etag and (unchanged := not_modified(request, etag)):
            return unchanged
        response = super().retrieve(request, *args, **kwargs)  # type: ignore[misc]
        return tag(response, etag) if etag else response
