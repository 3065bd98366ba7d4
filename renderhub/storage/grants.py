"""What a render node may fetch and where it may write, as links it can use without keys.

A node holds no storage credentials (issue 15). The manager gives each chunk attempt:

* a **read link** per file it needs (:func:`read_link`): OSS's signed GET URL, or for
  local-disk storage the manager's own signed download path (relative: the node joins it
  to the manager's address);
* a **write grant** per place it writes (:func:`write_grant`): the right to create objects
  whose keys start with one prefix (a frame's ``<stem>_0042.``, the attempt's log folder),
  each at most ``max_bytes``, until the grant expires. On OSS that is a PostObject policy
  (``starts-with $key``, ``content-length-range``); on local disk a signed token for the
  manager's upload endpoint (``renderhub.storage.views.signed_upload``), which checks the
  same two things. The node adds only a name's tail (``png``, ``agent.log``): never a
  folder, so a grant cannot reach past its prefix.

Both kinds are plain JSON the node reads with the standard library
(``renderhub.node.transfer``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from django.core import signing

from . import resolve
from .base import StorageError, normalize_key
from .local import LocalStorage
from .oss import OSSStorage

UPLOAD_SALT = "renderhub.storage.upload-grant"
MAX_FILES_PER_GRANT = 16  # a frame's files (stereo views, passes), or an attempt's logs
# Who may say whether a grant's owner (a chunk attempt) still runs: the jobs app
# registers it (the foundation imports no domain app). A local grant whose owner has
# ended writes nothing more, so a node that was stopped cannot overwrite its successor's
# frames.
_owner_checks: list[Callable[[str], bool]] = []


def register_owner_check(check: Callable[[str], bool]) -> None:
    if check not in _owner_checks:
        _owner_checks.append(check)


def owner_alive(owner: str) -> bool:
    return all(check(owner) for check in _owner_checks)


UPLOAD_PATH = "/storage/upload/{token}/"
# What a node may add to a grant's prefix: a file name's tail, never a folder.
TAIL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}\Z")


def read_link(url: str, expires: int) -> str:
    """A link that reads the file at ``url`` (no credentials needed) for ``expires`` s."""
    backend, key = resolve(url)
    return backend.signed_url(key, expires)


def write_grant(prefix_url: str, expires: int, max_bytes: int, owner: str = "") -> dict[str, Any]:
    """The right to write files named ``<prefix><tail>`` (see the module docstring)."""
    folder, _, name = prefix_url.rstrip("/").rpartition("/")
    name += "/" if prefix_url.endswith("/") else ""
    return write_grants(folder + "/", [name], expires, max_bytes, owner)[name]


def write_grants(
    folder_url: str, names: list[str], expires: int, max_bytes: int, owner: str = ""
) -> dict[str, dict[str, Any]]:
    """A grant per name in one folder (``<folder><name><tail>`` each): the folder is
    resolved and checked once, however many frames a chunk has. ``owner`` (a chunk
    attempt) ends local grants when it ends (``register_owner_check``)."""
    backend, key = resolve(folder_url)
    folder = normalize_key(key, is_prefix=True)
    if isinstance(backend, OSSStorage):
        return {n: _oss_grant(backend, folder + n, expires, max_bytes) for n in names}
    if isinstance(backend, LocalStorage):
        # Local keys are relative to LOCAL_STORAGE_ROOT, which the upload endpoint writes
        # to; a folder that leaves the root (a planted link) is refused here, and the
        # endpoint checks each write again.
        backend.target_path(folder.rstrip("/") + "/x")
        grants = {}
        for name in names:
            plain = name.removesuffix("/")  # a name, or a folder's (the logs')
            if not plain or "/" in plain or plain in (".", ".."):
                raise StorageError(f"not a name in {folder_url}: {name!r}")
            grants[name] = _local_grant(folder + name, expires, max_bytes, owner)
        return grants
    raise StorageError(f"no write grant for {folder_url}")  # pragma: no cover - two backends


def _local_grant(prefix: str, expires: int, max_bytes: int, owner: str) -> dict[str, Any]:
    token = signing.TimestampSigner(salt=UPLOAD_SALT).sign_object(
        {"p": prefix, "e": int(expires), "m": int(max_bytes), "o": owner}, compress=True
    )
    return {"kind": "put", "url": UPLOAD_PATH.format(token=token)}


def _oss_grant(backend: OSSStorage, prefix: str, expires: int, max_bytes: int) -> dict[str, Any]:
    from .oss_post import signed_fields

    full = backend.prefix + prefix
    policy: dict[str, object] = {
        "expiration": time.strftime(
            "%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() + int(expires))
        ),
        "conditions": [
            {"bucket": backend.bucket_name},
            ["starts-with", "$key", full],
            ["content-length-range", 0, int(max_bytes)],
        ],
    }
    url = backend.bucket._make_url(backend.bucket_name, "")
    return {"kind": "post", "url": url, "fields": signed_fields(backend, policy), "key": full}


def unsign_upload(token: str) -> tuple[str, int] | None:
    """The prefix (relative to LOCAL_STORAGE_ROOT) and size limit a local grant gives, or
    None when it is bad, tampered with, expired, or its owner has ended."""
    from django.conf import settings

    signer = signing.TimestampSigner(salt=UPLOAD_SALT)
    try:
        payload = signer.unsign_object(token, max_age=settings.RENDER_TIMEOUT + 3600)
        prefix, expires, limit = payload["p"], int(payload["e"]), int(payload["m"])
        owner = str(payload.get("o") or "")
        signer.unsign_object(token, max_age=expires)
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        return None
    if owner and not owner_alive(owner):
        return None
    return (prefix, limit) if isinstance(prefix, str) else None
