"""The storage interface every backend implements.

Storage is addressed by URL: ``file:///abs/root/key`` for local disk and
``oss://bucket/key`` for Alibaba OSS. A backend owns one root (a directory, or a
bucket); keys are ``/``-separated paths relative to it and never escape it.
"""

from __future__ import annotations

import mimetypes
import posixpath
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import quote

# progress(bytes_done, bytes_total) for uploads and downloads.
ProgressCallback = Callable[[int, int | None], None]

MAX_KEY_LENGTH = 1023  # OSS's own limit on object names, in UTF-8 bytes


# Raster images a browser shows itself; signed links to these open inline instead of
# downloading. Never SVG or HTML: those run script in the page that opens them.
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "image/avif"})


def inline_type(name: str) -> str | None:
    """The content type to show ``name`` inline with, or None when it is to be downloaded."""
    kind = mimetypes.guess_type(name, strict=False)[0]
    return kind if kind in INLINE_TYPES else None


def link_params(name: str) -> dict[str, str]:
    """The response-* parameters of a signed OSS link: inline for images, else a download."""
    kind = inline_type(name)
    disposition = "inline" if kind else "attachment"
    params = {
        "response-content-disposition": f"{disposition}; filename*=UTF-8''{quote(name, safe='')}"
    }
    if kind:
        params["response-content-type"] = kind  # objects are often stored as octet-stream
    return params


class StorageError(Exception):
    """Anything storage could not do; the message is meant for users."""


class InvalidKey(StorageError, ValueError):
    """A key or URL that is malformed or would escape the storage root."""


class NotFound(StorageError):
    """The object does not exist."""


class TransientError(StorageError):
    """A failure that persisted through our bounded retries (timeouts, 5xx, resets)."""


@dataclass(frozen=True)
class Entry:
    """One listing row: a file, or (``is_dir``) a common prefix ending in ``/``."""

    key: str
    is_dir: bool
    size: int | None = None
    modified: datetime | None = None
    etag: str | None = None

    @property
    def name(self) -> str:
        return posixpath.basename(self.key.rstrip("/"))


@dataclass(frozen=True)
class Listing:
    entries: list[Entry]
    next_marker: str | None  # pass back as ``marker`` for the next page; None at the end


def normalize_key(key: str, *, allow_empty: bool = False, is_prefix: bool = False) -> str:
    """Return the canonical form of ``key`` or raise :class:`InvalidKey`.

    Rejects what could escape the root or confuse a backend: ``..`` segments,
    absolute paths, backslashes, NUL and control characters, over-long keys.
    A prefix keeps (or gains) its trailing ``/``.
    """
    if not isinstance(key, str):
        raise InvalidKey("a storage key must be text")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in key):
        raise InvalidKey("a storage key must not contain control characters or NUL")
    if "\\" in key:
        raise InvalidKey(f"a storage key must use '/' not '\\': {key!r}")
    if key.startswith("/"):
        raise InvalidKey(f"a storage key must be relative, not absolute: {key!r}")
    parts = [p for p in key.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidKey(f"a storage key must not contain '..': {key!r}")
    normalized = "/".join(parts)
    if not normalized:
        if allow_empty or is_prefix:
            return ""
        raise InvalidKey("a storage key must not be empty")
    if is_prefix:
        normalized += "/"
    try:
        encoded = normalized.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates (e.g. undecodable file names via surrogateescape) are not keys.
        raise InvalidKey(f"a storage key must be valid Unicode text: {key!r}") from None
    if len(encoded) > MAX_KEY_LENGTH:
        raise InvalidKey(f"a storage key must be at most {MAX_KEY_LENGTH} bytes")
    return normalized


class Storage(Protocol):
    """One storage root. All keys are normalised with :func:`normalize_key`."""

    #: The root URL, e.g. ``file:///srv/renderhub/storage`` or ``oss://bucket``.
    root_url: str

    def url_for(self, key: str) -> str:
        """The absolute URL of ``key`` under this root."""
        ...

    def list(
        self,
        prefix: str = "",
        *,
        delimiter: str | None = "/",
        marker: str | None = None,
        limit: int = 1000,
    ) -> Listing:
        """One page of entries under ``prefix``, sorted by key.

        With ``delimiter='/'`` sub-folders come back as ``is_dir`` entries;
        with ``None`` every file below the prefix is listed.
        """
        ...

    def walk(self, prefix: str = "") -> Iterator[Entry]:
        """Every file below ``prefix``, all pages, sorted by key."""
        ...

    def stat(self, key: str) -> Entry:
        """The file's entry; raises :class:`NotFound`."""
        ...

    def exists(self, key: str) -> bool: ...

    def read(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        """The bytes of ``key`` (``start``/``end`` inclusive, as HTTP ranges)."""
        ...

    def write(self, key: str, data: bytes | BinaryIO, content_type: str | None = None) -> None:
        """Store ``data`` at ``key``; readers never see a partly written object."""
        ...

    def upload_file(
        self, local_path: Path, key: str, progress: ProgressCallback | None = None
    ) -> None:
        """Copy a local file to ``key`` (resumable multipart for large files on OSS)."""
        ...

    def download_file(
        self, key: str, local_path: Path, progress: ProgressCallback | None = None
    ) -> None:
        """Copy ``key`` to a local file; the file appears only when complete."""
        ...

    def delete(self, key: str) -> None:
        """Delete ``key``; deleting a missing key is not an error."""
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Delete every file under ``prefix``; returns how many."""
        ...

    def signed_url(self, key: str, expires: int = 3600) -> str:
        """A link that downloads ``key`` without credentials for ``expires`` seconds."""
        ...

    def local_path(self, key: str) -> Path | None:
        """The file's path when this storage is a local directory, else None."""
        ...
