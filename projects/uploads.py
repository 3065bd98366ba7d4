"""Uploads from the storage browser into a project's mapped storage: who, where, how.

Only members of the project (who may submit its renders) upload, only into mappings marked
writable, and only below the folder they browse: the path a browser sends (a file's name, or
``folder/sub/file`` from a folder upload) is refused when it is absolute, climbs with ``..``,
holds control characters or is too long, and on local disk when a symlink would carry it out
of the mapping. Then:

- local storage: a resumable chunked upload (:func:`start`, :func:`receive` piece by piece,
  :func:`complete`), through ``renderhub.storage.chunked``; the upload is a signed token
  naming the user, project, final URL and size, so no table is needed;
- OSS: :func:`start` hands back a signed POST form for exactly that key and size, and the
  browser sends the file straight to the bucket (at most 5 GB per file).
"""

from __future__ import annotations

import shutil
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core import signing

from renderhub import storage
from renderhub.storage import chunked
from renderhub.storage.local import TMP_PREFIX, LocalStorage

from .browser import OutsideMappings, mapping_holding
from .models import Project, StorageMapping

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

TOKEN_SALT = "renderhub.projects.upload"  # noqa: S105 - a signing salt, not a secret
MAX_NAME_BYTES = 255  # one path segment, as most file systems allow
MAX_PATH_BYTES = 1023
# Marks, embeddings, overrides and isolates: what reorders how a name is displayed.
BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)

__all__ = [
    "Target",
    "UploadRefused",
    "cancel",
    "clean_path",
    "clean_stale_uploads",
    "complete",
    "receive",
    "received",
    "register_overwrite_check",
    "resolve_target",
    "start",
]


class UploadRefused(Exception):
    """An upload (or a piece of one) that is not allowed; the message is for the user."""

    def __init__(self, message: str, status: int = 400, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.extra = extra


@dataclass(frozen=True)
class Target:
    mapping: StorageMapping
    url: str  # the file's storage URL
    backend: storage.Storage
    key: str


def _registry() -> Path:
    return Path(settings.VAR_DIR) / "uploads"


# Asked before a file is replaced: a reason it must not be (or None). The jobs app registers
# "an unfinished job renders from it", which projects, below jobs, cannot know itself.
_overwrite_checks: list[Callable[[str], str | None]] = []


def register_overwrite_check(check: Callable[[str], str | None]) -> None:
    if check not in _overwrite_checks:
        _overwrite_checks.append(check)


def _refuse_overwriting(target: Target) -> None:
    """UploadRefused (409) when ``target`` holds a file that must not be replaced now."""
    if not _overwrite_checks or not target.backend.exists(target.key):
        return
    for check in _overwrite_checks:
        if reason := check(target.url):
            raise UploadRefused(reason, 409)


def clean_path(path: str) -> str:
    """``path`` (relative, ``/``-separated) when it is safe to append to a folder."""
    if not isinstance(path, str) or not path.strip():
        raise UploadRefused("The file has no name.")
    if any(unicodedata.category(ch) == "Cc" for ch in path):  # C0, DEL and C1 (U+0085…)
        raise UploadRefused(f"{path!r}: file names must not contain control characters.")
    if any(ch in BIDI_CONTROLS for ch in path):
        # They make a listing show another name: "x\u202egnp.html" reads as "xlmth.png".
        raise UploadRefused(
            f"{path!r}: file names must not contain text-direction control characters."
        )
    if path.startswith("/") or "\\" in path or (len(path) > 1 and path[1] == ":"):
        raise UploadRefused(f"{path!r}: give a path relative to the folder, with '/' only.")
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise UploadRefused(f"{path!r}: a path must not have empty, '.' or '..' parts.")
    try:
        encoded = [part.encode("utf-8") for part in parts]
    except UnicodeEncodeError:
        raise UploadRefused(f"{path!r} is not valid Unicode text.") from None
    if any(len(part) > MAX_NAME_BYTES for part in encoded):
        raise UploadRefused(f"{path!r}: each name may have at most {MAX_NAME_BYTES} bytes.")
    if sum(len(part) + 1 for part in encoded) > MAX_PATH_BYTES:
        raise UploadRefused(f"{path!r}: the path may have at most {MAX_PATH_BYTES} bytes.")
    if "${filename}" in path.lower():
        # OSS's PostObject replaces it with whatever file name the form sends.
        raise UploadRefused(f"{path!r}: '${{filename}}' cannot be part of a name.")
    if any(part.startswith(TMP_PREFIX) for part in parts):
        raise UploadRefused(f"{path!r}: names starting with {TMP_PREFIX} are reserved.")
    return path


def resolve_target(user: User | AnonymousUser, project: Project, url: str) -> Target:
    """Where the file ``url`` would go, when ``user`` may upload it there."""
    if not project.is_member(user):
        raise UploadRefused(f"Only members of project {project} can upload to it.", 403)
    try:
        mapping = mapping_holding(list(project.mappings.all()), url)
        backend, key = storage.resolve(url)
    except (OutsideMappings, storage.StorageError) as exc:
        raise UploadRefused(str(exc)) from None
    if not mapping.writable:
        raise UploadRefused(
            f"{mapping.source} is mapped read-only, so nothing can be uploaded to it; a "
            "project manager can tick “writable” on the mapping in the admin.",
            403,
        )
    if isinstance(backend, LocalStorage):
        try:
            folder = backend.local_path(storage.resolve(mapping.source)[1])
            dest = backend.target_path(key)
        except storage.StorageError as exc:
            raise UploadRefused(str(exc)) from None
        # A symlink below the mapping may point elsewhere in the storage root (another
        # project's folder): what counts is where the file really lands.
        if folder is None or not dest.parent.is_relative_to(folder):
            raise UploadRefused(f"{url} leads outside the mapped folder {mapping.source}.", 403)
        if dest.is_dir():
            raise UploadRefused(f"{url}: a folder has that name; choose another name.", 409)
        if blocker := next((p for p in dest.parents if p.exists() and not p.is_dir()), None):
            raise UploadRefused(
                f"{url}: {blocker.name} is a file, so it cannot hold a folder's files.", 409
            )
    return Target(mapping, url, backend, key)


def start(
    user: User | AnonymousUser, project: Project, folder: str, path: str, size: int
) -> dict[str, Any]:
    """Begin uploading ``size`` bytes to ``folder`` + ``path``; what the browser does next."""
    if not isinstance(size, int) or size < 0:
        raise UploadRefused("The file size must be a whole number of bytes.")
    if size > settings.UPLOAD_MAX_BYTES:
        raise UploadRefused(
            f"{path} has {size} bytes; uploads hold at most {settings.UPLOAD_MAX_BYTES} "
            "(UPLOAD_MAX_BYTES).",
            413,
        )
    folder = folder if folder.endswith("/") else folder + "/"
    try:
        url = storage.join(folder, clean_path(path))
    except storage.StorageError as exc:
        raise UploadRefused(str(exc)) from None
    target = resolve_target(user, project, url)
    _refuse_overwriting(target)
    if isinstance(target.backend, LocalStorage):
        return _start_local(user, project, target, size)
    from renderhub.storage.oss import OSSStorage
    from renderhub.storage.oss_post import post_form

    assert isinstance(target.backend, OSSStorage)
    try:
        form = post_form(target.backend, target.key, size, settings.UPLOAD_POLICY_SECONDS)
    except storage.StorageError as exc:
        raise UploadRefused(str(exc), 413) from None
    return {"kind": "oss", "url": form.url, "fields": form.fields, "file": target.url}


def _start_local(
    user: User | AnonymousUser, project: Project, target: Target, size: int
) -> dict[str, Any]:
    assert isinstance(target.backend, LocalStorage)
    chunked.clean_stale(_registry(), settings.UPLOAD_STALE_SECONDS)
    dest = target.backend.target_path(target.key)
    existing = next(p for p in (dest.parent, *dest.parents) if p.exists())
    # Open uploads may still write what they announced: those bytes are taken already.
    uploads = chunked.open_uploads(_registry())
    owner = str(user.pk)
    mine = [s for o, s, _ in uploads if o == owner]
    if len(mine) >= settings.UPLOAD_MAX_OPEN or sum(mine) + size > settings.UPLOAD_MAX_OPEN_BYTES:
        raise UploadRefused(
            f"You have {len(mine)} unfinished uploads holding {sum(mine)} bytes; at most "
            f"{settings.UPLOAD_MAX_OPEN} uploads and {settings.UPLOAD_MAX_OPEN_BYTES} bytes "
            "(UPLOAD_MAX_OPEN, UPLOAD_MAX_OPEN_BYTES). Finish or cancel some first.",
            429,
        )
    pending = sum(max(0, s - chunked.offset(p)) for _, s, p in uploads)
    if shutil.disk_usage(existing).free - pending < size:
        raise UploadRefused(f"There is not enough free disk space for {size} bytes.", 507)
    upload_id = uuid.uuid4().hex
    chunked.partial_for(
        target.backend, target.key, upload_id, _registry(), new=True, size=size, owner=owner
    )
    token = signing.TimestampSigner(salt=TOKEN_SALT).sign_object(
        {"i": upload_id, "u": user.pk, "p": project.pk, "url": target.url, "s": size}
    )
    return {
        "kind": "local",
        "upload": token,
        "offset": 0,
        "chunk_size": settings.UPLOAD_CHUNK_BYTES,
        "file": target.url,
    }


@dataclass(frozen=True)
class _Upload:
    target: Target
    upload_id: str
    size: int
    partial: Path


def _upload(user: User | AnonymousUser, project: Project, token: str) -> _Upload:
    """The upload ``token`` names, checked again: the user may have lost the right since."""
    unknown = UploadRefused("This upload is unknown or has expired; start it again.", 404)
    try:
        payload = signing.TimestampSigner(salt=TOKEN_SALT).unsign_object(
            token, max_age=settings.UPLOAD_STALE_SECONDS
        )
        upload_id, user_id, project_id = payload["i"], payload["u"], payload["p"]
        url, size = str(payload["url"]), int(payload["s"])
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        raise unknown from None
    if user_id != user.pk or project_id != project.pk:
        raise unknown
    target = resolve_target(user, project, url)
    assert isinstance(target.backend, LocalStorage)
    try:
        partial = chunked.partial_for(target.backend, target.key, upload_id, _registry())
    except storage.StorageError:
        raise unknown from None
    return _Upload(target, upload_id, size, partial)


def received(user: User | AnonymousUser, project: Project, token: str) -> int:
    """How many bytes of the upload arrived (where to go on after a lost connection)."""
    return chunked.offset(_upload(user, project, token).partial)


def receive(
    user: User | AnonymousUser,
    project: Project,
    token: str,
    at: int,
    stream: chunked.Readable,
    length: int,
) -> int:
    """Store ``length`` bytes of ``stream`` at byte ``at``; returns the new offset."""
    if length > settings.UPLOAD_CHUNK_BYTES:
        raise UploadRefused(
            f"A piece holds at most {settings.UPLOAD_CHUNK_BYTES} bytes (UPLOAD_CHUNK_BYTES).",
            413,
        )
    upload = _upload(user, project, token)
    if not chunked.is_open(_registry(), upload.upload_id):
        # Completed, cancelled or cleaned away: a piece now would start an unnoted partial.
        raise UploadRefused("This upload is over; start it again to send the file anew.", 404)
    try:
        return chunked.append(upload.partial, at, stream, length, upload.size)
    except chunked.OffsetMismatch as exc:
        raise UploadRefused(str(exc), 409, offset=exc.expected) from None
    except storage.StorageError as exc:
        raise UploadRefused(str(exc)) from None


def complete(user: User | AnonymousUser, project: Project, token: str) -> str:
    """Put the whole file under its name (atomically); returns its storage URL."""
    upload = _upload(user, project, token)
    assert isinstance(upload.target.backend, LocalStorage)
    dest = upload.target.backend.target_path(upload.target.key)
    if chunked.finished(upload.partial, dest, upload.size, _registry(), upload.upload_id):
        return upload.target.url
    _refuse_overwriting(upload.target)  # a job may have started rendering from it since
    try:
        chunked.finish(upload.partial, dest, upload.size, _registry(), upload.upload_id)
    except storage.StorageError as exc:
        raise UploadRefused(str(exc), 409, offset=chunked.offset(upload.partial)) from None
    return upload.target.url


def cancel(user: User | AnonymousUser, project: Project, token: str) -> None:
    upload = _upload(user, project, token)
    chunked.abort(upload.partial, _registry(), upload.upload_id)


def clean_stale_uploads() -> int:
    """Delete partial uploads nobody touched for ``UPLOAD_STALE_SECONDS``."""
    return chunked.clean_stale(_registry(), settings.UPLOAD_STALE_SECONDS)
