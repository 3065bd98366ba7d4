"""Downloads through signed links made by :meth:`LocalStorage.signed_url`.

The link is the credential: no session is needed, and a bad, tampered or expired
token gets the same bare 403 so the response says nothing about why.
"""

from __future__ import annotations

import posixpath

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core import signing
from django.http import FileResponse, Http404, HttpRequest, HttpResponseForbidden
from django.http.response import HttpResponseBase
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from .base import InvalidKey, NotFound, inline_type
from .local import SIGNED_URL_SALT, LocalStorage

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
