"""Downloads through signed links made by :meth:`LocalStorage.signed_url`, and render
nodes' uploads through the write grants of :mod:`renderhub.storage.grants`.

The link is the credential: no session is needed, and a bad, tampered or expired
token gets the same bare 403 so the response says nothing about why.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core import signing
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseForbidden,
)
from django.http.response import HttpResponseBase
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_safe

from .base import InvalidKey, NotFound, StorageError, inline_type
from .grants import MAX_FILES_PER_GRANT, TAIL, unsign_upload
from .local import CHUNK_SIZE, SIGNED_URL_SALT, LocalStorage

DENIED = "This link is invalid or has expired."


def _unsign(token: str) -> str | None:
    """The key the token grants, or None when it is bad or too old."""
    signer = signing.TimestampSigner(salt=SIGNED_URL_SALT)
    try:
        # SIGNED_URL_TTL caps every link; the per-link expiry is in the signed payload.
        payload = signer.unsign_object(token, max_age=settings.SIGNED_URL_TTL)
        key, expires = payload["k"], int(payload["e"])
        signer.unsign_object(token, max_age=expires)
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        return None
    return key if isinstance(key, str) else None


@login_not_required  # the signed token is the credential
@require_safe
@never_cache
def signed_download(request: HttpRequest, token: str, filename: str) -> HttpResponseBase:
    key = _unsign(token)
    if key is None:
        return HttpResponseForbidden(DENIED, content_type="text/plain")
    backend = LocalStorage(settings.LOCAL_STORAGE_ROOT)
    try:
        backend.stat(key)
        path = backend.local_path(key)
    except (NotFound, InvalidKey):
        raise Http404("No such file.") from None
    assert path is not None  # LocalStorage always has local paths
    name = posixpath.basename(key)
    # Images open in the browser tab; anything else downloads (never rendered as a page).
    kind = inline_type(name)
    return FileResponse(
        open(path, "rb"),
        as_attachment=kind is None,
        filename=name,
        content_type=kind,  # None: guessed from the name, as before
    )


class TooBig(Exception):
    pass


def _too_many(backend: LocalStorage, prefix: str, tail: str) -> bool:
    """A new file past MAX_FILES_PER_GRANT under the grant's prefix (replacing one is fine):
    a grant is for a frame's few files, not a way to fill the disk."""
    target = backend.target_path(prefix + tail)
    if target.exists():
        return False
    start = posixpath.basename(prefix)
    try:
        names = [p.name for p in target.parent.iterdir() if p.name.startswith(start)]
    except FileNotFoundError:
        return False
    return len(names) >= MAX_FILES_PER_GRANT


def _body(request: HttpRequest, limit: int) -> Iterator[bytes]:
    """The request body in blocks, refusing (mid-way, before the file is in place) one
    longer than ``limit``."""
    done = 0
    while block := request.read(CHUNK_SIZE):
        done += len(block)
        if done > limit:
            raise TooBig
        yield block


@login_not_required  # the grant is the credential (a render node has no account)
@csrf_exempt
@require_http_methods(["PUT"])
@never_cache
def signed_upload(request: HttpRequest, token: str, tail: str) -> HttpResponseBase:
    """PUT a file's bytes to ``<the grant's prefix><tail>`` (see renderhub.storage.grants)."""
    granted = unsign_upload(token)
    if granted is None:
        return HttpResponseForbidden(DENIED, content_type="text/plain")
    prefix, limit = granted
    if not TAIL.match(tail):
        return HttpResponseBadRequest("A file name, without folders.", content_type="text/plain")
    length = request.headers.get("Content-Length", "")
    if length.isdigit() and int(length) > limit:
        return HttpResponse("Larger than the grant allows.", status=413, content_type="text/plain")
    backend = LocalStorage(settings.LOCAL_STORAGE_ROOT)
    try:
        if _too_many(backend, prefix, tail):
            return HttpResponseForbidden(
                f"At most {MAX_FILES_PER_GRANT} files per grant.", content_type="text/plain"
            )
        backend.write_blocks(prefix + tail, _body(request, limit))
    except TooBig:
        return HttpResponse("Larger than the grant allows.", status=413, content_type="text/plain")
    except (InvalidKey, StorageError):
        return HttpResponseForbidden(DENIED, content_type="text/plain")
    return HttpResponse(status=201)
