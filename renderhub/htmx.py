"""htmx: the staff pages poll and swap fragments; a view answers those requests with one."""

from __future__ import annotations

from django.http import HttpRequest


def is_htmx(request: HttpRequest) -> bool:
    """The request comes from htmx (a poll or a swap), not a full page load."""
    return request.headers.get("HX-Request") == "true"
