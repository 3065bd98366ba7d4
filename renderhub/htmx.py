"""htmx: the staff pages poll and swap fragments; a view answers those requests with one."""

from __future__ import annotations

import hashlib
from typing import TypeVar

from django.http import HttpRequest, HttpResponseBase, HttpResponseNotModified

R = TypeVar("R", bound=HttpResponseBase)


def is_htmx(request: HttpRequest) -> bool:
    """The request comes from htmx (a poll or a swap), not a full page load."""
    return request.headers.get("HX-Request") == "true"


# --- cheap polls: a version as an ETag, "304 Not Modified" while it holds ----------------


def poll_etag(*parts: object) -> str:
    """A strong ETag naming a partial's state: a digest of what its version query read.

    The parts are counters and timestamps a page already shows; the digest says nothing
    about them to whoever sees the tag.
    """
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=12).hexdigest()
    return f'"{digest}"'


def client_etag(request: HttpRequest) -> str:
    """The version the polling element holds (its ``If-None-Match``), or ''."""
    return request.headers.get("If-None-Match", "").strip()[:100]


def not_modified(request: HttpRequest, etag: str) -> HttpResponseNotModified | None:
    """A bodiless 304 when the poller already holds ``etag``; None when it must be sent.

    Asked only after the permission check: a user who may not see the object gets its 404.
    """
    if client_etag(request) != etag:
        return None
    return tag(HttpResponseNotModified(), etag)


def tag(response: R, etag: str) -> R:
    """Mark a polled partial with its version. ``no-store``: the page's script, not the
    browser's cache, keeps the version (it sends it back as ``If-None-Match``)."""
    response["ETag"] = etag
    response["Cache-Control"] = "no-store"
    return response
