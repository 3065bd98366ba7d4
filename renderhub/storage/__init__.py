"""Storage addressed by URL: ``file:///…`` (local disk) and ``oss://bucket/…`` (Alibaba OSS).

    backend, key = storage.resolve("oss://renders/jobs/12/frame_0001.exr")
    backend.read(key)
    storage.join("oss://renders/jobs/", "12", "out/")   # "oss://renders/jobs/12/out/"

File URLs are percent-encoded and must lie inside ``LOCAL_STORAGE_ROOT``; OSS URLs
carry the key as is (like ossutil). A URL ending in ``/`` names a folder and resolves
to a key ending in ``/``.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from .base import (
    MAX_KEY_LENGTH,
    Entry,
    InvalidKey,
    Listing,
    NotFound,
    ProgressCallback,
    Storage,
    StorageError,
    TransientError,
    normalize_key,
)

__all__ = [
    "MAX_KEY_LENGTH",
    "Entry",
    "InvalidKey",
    "Listing",
    "NotFound",
    "ProgressCallback",
    "Storage",
    "StorageError",
    "TransientError",
    "default_storage",
    "is_prefix_of",
    "join",
    "normalize_key",
    "reset_cache",
    "resolve",
]

SCHEMES = ("file", "oss")
_ACCEPTED = "file:///absolute/path or oss://bucket/key"

_cache: dict[tuple[Any, ...], Storage] = {}
_cache_lock = threading.Lock()


def reset_cache() -> None:
    """Forget every backend object (they are rebuilt on the next resolve)."""
    with _cache_lock:
        _cache.clear()


def _normalize(key: str) -> str:
    return normalize_key(key, allow_empty=True, is_prefix=key.endswith("/"))


def _split(url: str) -> tuple[str, str, str]:
    """``(scheme, bucket, key)``; for ``file`` the bucket is empty and the key is the
    absolute path without its leading ``/``. Keys come back normalised."""
    if not isinstance(url, str) or "://" not in url:
        raise InvalidKey(f"{url!r} is not a storage URL; expected {_ACCEPTED}")
    scheme, rest = url.split("://", 1)
    scheme = scheme.lower()
    if scheme == "oss":
        from .oss import BUCKET_RE

        # Raw keys, no percent-decoding: '%', '?' and '#' are ordinary key characters.
        bucket, _, key = rest.partition("/")
        if not BUCKET_RE.match(bucket):
            raise InvalidKey(f"{url!r} does not name a valid bucket; expected oss://bucket/key")
        return "oss", bucket, _normalize(key)
    if scheme == "file":
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise InvalidKey(f"{url!r} names a remote host; file URLs must be local")
        if parts.query or parts.fragment:
            raise InvalidKey(f"{url!r}: quote '?' and '#' in file URLs as %3F and %23")
        try:
            path = unquote(parts.path, errors="strict")
        except UnicodeDecodeError:
            raise InvalidKey(f"{url!r} is not valid UTF-8 once percent-decoded") from None
        if not path.startswith("/"):
            raise InvalidKey(f"{url!r} is not an absolute file URL")
        # The path below '/' is checked like a key: no '..', NUL or control characters.
        return "file", "", _normalize(path[1:])
    raise InvalidKey(f"unsupported storage URL {url!r}; expected {_ACCEPTED}")


def _unsplit(scheme: str, bucket: str, key: str) -> str:
    if scheme == "file":
        return "file:///" + quote(key, safe="/")
    return f"oss://{bucket}/{key}"


def _local_backend(root: Any) -> Storage:
    from .local import LocalStorage

    cache_key = ("file", str(root))
    with _cache_lock:
        if (backend := _cache.get(cache_key)) is None:
            backend = _cache[cache_key] = LocalStorage(root)
    return backend


def _oss_backend(bucket: str, prefix: str = "") -> Storage:
    from django.conf import settings

    for name in ("OSS_ENDPOINT", "OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET"):
        if not getattr(settings, name, ""):
            raise StorageError(f"oss:// storage needs the {name} setting, which is not set")
    # Settings are part of the key: tests (and reconfigured processes) get fresh clients.
    cache_key = (
        "oss",
        bucket,
        prefix,
        settings.OSS_ENDPOINT,
        settings.OSS_ACCESS_KEY_ID,
        settings.OSS_ACCESS_KEY_SECRET,
        settings.STORAGE_TIMEOUT,
        settings.STORAGE_RETRIES,
    )
    with _cache_lock:
        if (backend := _cache.get(cache_key)) is None:
            from .oss import OSSStorage

            backend = _cache[cache_key] = OSSStorage(
                bucket,
                settings.OSS_ENDPOINT,
                settings.OSS_ACCESS_KEY_ID,
                settings.OSS_ACCESS_KEY_SECRET,
                prefix=prefix,
                timeout=settings.STORAGE_TIMEOUT,
                retries=settings.STORAGE_RETRIES,
            )
    return backend


def _local_key(path_key: str) -> str:
    """The key below ``LOCAL_STORAGE_ROOT`` of an absolute path given as a key."""
    from django.conf import settings

    root = str(settings.LOCAL_STORAGE_ROOT)
    root_key = _normalize(root.lstrip("/")).rstrip("/")
    if not root_key:  # the root is "/"
        return path_key
    if path_key.rstrip("/") == root_key:
        return ""
    if not path_key.startswith(root_key + "/"):
        raise InvalidKey(
            f"{_unsplit('file', '', path_key)} is outside the local storage root {root} "
            "(LOCAL_STORAGE_ROOT)"
        )
    return path_key[len(root_key) + 1 :]


def resolve(url: str) -> tuple[Storage, str]:
    """The backend for ``url`` and the key within it; raises :class:`StorageError`."""
    from django.conf import settings

    scheme, bucket, key = _split(url)
    if scheme == "file":
        return _local_backend(settings.LOCAL_STORAGE_ROOT), _local_key(key)
    return _oss_backend(bucket), key


def default_storage() -> Storage:
    """Where RenderHub keeps its own files: ``STORAGE_URL``, its path folded into the root."""
    from django.conf import settings

    scheme, bucket, key = _split(settings.STORAGE_URL)
    if scheme == "file":
        sub = _local_key(key).rstrip("/")
        root = Path(settings.LOCAL_STORAGE_ROOT)
        return _local_backend(root / sub if sub else root)
    return _oss_backend(bucket, prefix=key)


def join(url: str, *parts: str) -> str:
    """``url`` with ``parts`` appended as key segments; a trailing ``/`` is kept.

    Each part is checked like a key, so ``join(url, "../x")`` raises InvalidKey.
    """
    scheme, bucket, key = _split(url)
    segments = [key] + [_normalize(part) for part in parts]
    nonempty = [s for s in segments if s]
    if not nonempty:
        return _unsplit(scheme, bucket, "")
    joined = "/".join(s.rstrip("/") for s in nonempty)
    return _unsplit(scheme, bucket, normalize_key(joined, is_prefix=nonempty[-1].endswith("/")))


def is_prefix_of(prefix_url: str, url: str) -> bool:
    """Whether ``url`` is ``prefix_url`` itself or lies in the folder it names.

    Folder semantics: ``oss://b/jobs`` contains ``oss://b/jobs/1`` but not ``oss://b/jobs2``.
    """
    p_scheme, p_bucket, p_key = _split(prefix_url)
    scheme, bucket, key = _split(url)
    if (p_scheme, p_bucket) != (scheme, bucket):
        return False
    folder = p_key.rstrip("/")
    return not folder or key.rstrip("/") == folder or key.startswith(folder + "/")
