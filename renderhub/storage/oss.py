"""Alibaba Cloud OSS storage on oss2.

oss2 itself does not retry ordinary calls, so every call here goes through
:meth:`OSSStorage._call`: bounded retries with exponential backoff and jitter for
transport errors, 5xx and throttling; 4xx fail at once. Keys are relative to an
optional ``prefix`` inside the bucket. The AccessKey secret is handed to oss2 and
never kept, logged or shown in ``repr``.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import logging
import os
import posixpath
import random
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import oss2
import oss2.exceptions as oss_errors

from .base import (
    Entry,
    InvalidKey,
    Listing,
    NotFound,
    ProgressCallback,
    StorageError,
    TransientError,
    link_params,
    normalize_key,
)

__all__ = ["OSSStorage"]

log = logging.getLogger(__name__)

T = TypeVar("T")

MiB = 1024 * 1024
BATCH_DELETE_SIZE = 1000  # OSS's limit per DeleteMultipleObjects request
LIST_PAGE_MAX = 1000  # OSS's limit on max-keys
BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")

# Codes OSS uses for throttling and server-side trouble; always worth another try.
TRANSIENT_CODES = frozenset(
    {
        "RequestTimeout",
        "InternalError",
        "ServiceUnavailable",
        "SlowDown",
        "Throttling",
        "TooManyRequests",
        "RequestTimeTooSkewed",
    }
)

_OSS_FAILURES = (
    oss_errors.ServerError,
    oss_errors.RequestError,
    oss_errors.InconsistentError,
)

_session_lock = threading.Lock()
_session: oss2.Session | None = None


def _shared_session() -> oss2.Session:
    """One connection pool per process, shared by every bucket object."""
    global _session
    with _session_lock:
        if _session is None:
            _session = oss2.Session()
        return _session


def _is_transient(exc: Exception) -> bool:
    if isinstance(exc, oss_errors.RequestError | oss_errors.InconsistentError):
        return True  # timeouts, resets, and CRC mismatches (corrupted in transit)
    if isinstance(exc, oss_errors.ServerError):
        return exc.status >= 500 or exc.status in (408, 429) or exc.code in TRANSIENT_CODES
    return False


def _describe(exc: Exception) -> str:
    """A short, secret-free description of an oss2 error."""
    if isinstance(exc, oss_errors.ServerError):
        text = f"HTTP {exc.status} {exc.code or 'error'}"
        if exc.message:
            text += f": {exc.message}"
        if exc.request_id:
            text += f" (request id {exc.request_id})"
        return text
    if isinstance(exc, oss_errors.RequestError):
        inner = getattr(exc, "exception", None)
        return f"network error: {str(inner)[:300] if inner else 'RequestError'}"
    if isinstance(exc, oss_errors.InconsistentError):
        return "CRC mismatch: data was corrupted in transit"
    return type(exc).__name__


def _as_datetime(timestamp: float | int | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, tz=UTC)


class OSSStorage:
    """One bucket (optionally a prefix inside it) on Alibaba Cloud OSS."""

    #: Files at least this large are uploaded as resumable multipart uploads.
    multipart_threshold: int = 10 * MiB
    #: Part size for multipart uploads and ranged downloads (None: oss2 decides).
    part_size: int | None = None
    #: Objects at least this large are downloaded with resumable ranged GETs.
    multiget_threshold: int = 100 * MiB
    num_threads: int = 1

    def __init__(
        self,
        bucket_name: str,
        endpoint: str,
        access_key_id: str,
        access_key_secret: str,
        prefix: str = "",
        timeout: float = 30,
        retries: int = 3,
        *,
        backoff: float = 0.5,
        max_backoff: float = 10.0,
        auth_version: str = "v1",
        region: str | None = None,
        checkpoint_dir: Path | None = None,
    ) -> None:
        if not BUCKET_RE.match(bucket_name):
            raise InvalidKey(f"{bucket_name!r} is not a valid OSS bucket name")
        if not endpoint:
            raise StorageError("OSS storage needs an endpoint")
        if not access_key_id or not access_key_secret:
            raise StorageError("OSS storage needs an AccessKey id and secret")
        self.bucket_name = bucket_name
        self.endpoint = endpoint
        self.prefix = normalize_key(prefix, is_prefix=True)
        self.timeout = timeout
        self.retries = max(0, retries)
        self.backoff = backoff
        self.max_backoff = max_backoff
        # Checkpoints let a retried (or re-run) transfer resume; keep them out of $HOME.
        self.checkpoint_dir = Path(
            checkpoint_dir or Path(tempfile.gettempdir()) / "renderhub-oss-checkpoints"
        )
        self.root_url = f"oss://{bucket_name}/{self.prefix}"
        auth: Any
        if auth_version == "v1":
            auth = oss2.Auth(access_key_id, access_key_secret)
        elif auth_version == "v4":
            if not region:
                raise StorageError("OSS signature V4 needs a region")
            auth = oss2.AuthV4(access_key_id, access_key_secret)
        else:
            raise StorageError(f"unknown OSS auth version {auth_version!r} (use 'v1' or 'v4')")
        try:
            self.bucket = oss2.Bucket(
                auth,
                endpoint,
                bucket_name,
                session=_shared_session(),
                connect_timeout=timeout,
                region=region,
            )
        except oss_errors.ClientError as exc:
            raise StorageError(f"invalid OSS endpoint {endpoint!r}") from exc

    def __repr__(self) -> str:
        return (
            f"OSSStorage(bucket={self.bucket_name!r}, endpoint={self.endpoint!r}, "
            f"prefix={self.prefix!r})"
        )

    # --- keys --------------------------------------------------------------------------

    def _full(self, key: str) -> str:
        return self.prefix + normalize_key(key)

    def _relative(self, full_key: str) -> str:
        return full_key[len(self.prefix) :]

    def url_for(self, key: str) -> str:
        normalized = normalize_key(key, allow_empty=True, is_prefix=key.endswith("/"))
        return self.root_url + normalized

    def local_path(self, key: str) -> Path | None:
        return None

    # --- retries -----------------------------------------------------------------------

    def _call(self, what: str, key: str, fn: Callable[[], T]) -> T:
        """Run ``fn`` with bounded retries; translate oss2 errors into ours."""
        attempt = 0
        while True:
            try:
                return fn()
            except oss_errors.NotFound as exc:
                if exc.code == "NoSuchBucket":
                    raise StorageError(
                        f"OSS bucket {self.bucket_name!r} does not exist ({_describe(exc)})"
                    ) from exc
                if exc.code == "NoSuchUpload":
                    raise StorageError(
                        f"the multipart upload of {self.url_for(key)} was aborted elsewhere; "
                        "the next attempt starts it over"
                    ) from exc
                raise NotFound(f"{self.url_for(key)} does not exist") from exc
            except _OSS_FAILURES as exc:
                if not _is_transient(exc):
                    raise StorageError(
                        f"OSS {what} of {self.url_for(key)} failed: {_describe(exc)}"
                    ) from exc
                if attempt >= self.retries:
                    raise TransientError(
                        f"OSS {what} of {self.url_for(key)} failed after {attempt + 1} "
                        f"attempts: {_describe(exc)}"
                    ) from exc
                delay = min(self.max_backoff, self.backoff * 2**attempt)
                delay = random.uniform(delay / 2, delay)  # noqa: S311 - jitter, not crypto
                log.warning(
                    "OSS %s of %s failed (%s); retry %d/%d in %.2fs",
                    what,
                    self.url_for(key),
                    _describe(exc),
                    attempt + 1,
                    self.retries,
                    delay,
                )
                time.sleep(delay)
                attempt += 1
            except oss_errors.ClientError as exc:
                raise StorageError(
                    f"OSS {what} of {self.url_for(key)} failed: {_describe(exc)}"
                ) from exc

    # --- listing -----------------------------------------------------------------------

    def list(
        self,
        prefix: str = "",
        *,
        delimiter: str | None = "/",
        marker: str | None = None,
        limit: int = 1000,
    ) -> Listing:
        if delimiter not in (None, "/"):
            raise ValueError("the only supported delimiter is '/'")
        if limit < 1:
            raise ValueError("limit must be at least 1")
        prefix = normalize_key(prefix, is_prefix=True)
        full_prefix = self.prefix + prefix
        # Markers are keys (as on local disk), sent as start-after; OSS's opaque
        # continuation token is only used to fill one page.
        full_marker = ""
        if marker:
            full_marker = self.prefix + normalize_key(marker, is_prefix=marker.endswith("/"))
        entries: list[Entry] = []
        token = ""
        truncated = True
        while truncated and len(entries) < limit:
            want = min(LIST_PAGE_MAX, limit - len(entries))
            result = self._call(
                "list",
                prefix,
                functools.partial(
                    self.bucket.list_objects_v2,
                    prefix=full_prefix,
                    delimiter=delimiter or "",
                    continuation_token=token,
                    start_after="" if token else full_marker,
                    max_keys=want,
                ),
            )
            page = [
                Entry(
                    key=self._relative(obj.key),
                    is_dir=False,
                    size=obj.size,
                    modified=_as_datetime(obj.last_modified),
                    etag=obj.etag,
                )
                for obj in result.object_list
                # "folder/" placeholder objects (the OSS console makes them) are not files
                if not obj.key.endswith("/")
            ]
            page += [Entry(key=self._relative(p), is_dir=True) for p in result.prefix_list]
            # A folder already returned on an earlier page must not come back.
            entries += sorted(
                (e for e in page if not full_marker or self.prefix + e.key > full_marker),
                key=lambda e: e.key,
            )
            truncated = result.is_truncated
            token = result.next_continuation_token if truncated else ""
        entries = entries[:limit]
        return Listing(entries, entries[-1].key if truncated and entries else None)

    def walk(self, prefix: str = "") -> Iterator[Entry]:
        marker: str | None = None
        while True:
            page = self.list(prefix, delimiter=None, marker=marker, limit=LIST_PAGE_MAX)
            yield from page.entries
            if page.next_marker is None:
                return
            marker = page.next_marker

    # --- objects -----------------------------------------------------------------------

    def stat(self, key: str) -> Entry:
        full = self._full(key)
        result = self._call("stat", key, lambda: self.bucket.head_object(full))
        return Entry(
            key=self._relative(full),
            is_dir=False,
            size=result.content_length,
            modified=_as_datetime(result.last_modified),
            etag=result.etag,
        )

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except NotFound:
            return False
        return True

    def read(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        full = self._full(key)
        first = 0 if start is None else start
        if first < 0 or (end is not None and end < first):
            raise ValueError(f"invalid byte range {start}-{end}")
        ranged = start is not None or end is not None

        def fetch() -> bytes:
            try:
                result = self.bucket.get_object(
                    full,
                    byte_range=(first, end) if ranged else None,
                    # "standard": a range past the end is an error, not the whole object
                    headers={"x-oss-range-behavior": "standard"} if ranged else None,
                )
            except oss_errors.ServerError as exc:
                if exc.status == 416:
                    return b""  # the range starts beyond the end
                raise
            data = result.read()
            if not ranged and result.server_crc is not None:
                oss2.utils.check_crc("get", result.client_crc, result.server_crc, result.request_id)
            return data

        return self._call("read", key, fetch)

    def write(self, key: str, data: bytes | BinaryIO, content_type: str | None = None) -> None:
        full = self._full(key)
        headers = {"Content-Type": content_type} if content_type else None
        if isinstance(data, bytes | bytearray | memoryview):
            body = bytes(data)
            self._call("write", key, lambda: self.bucket.put_object(full, body, headers=headers))
            return
        # A retry must resend from the start: rewind, or spool a one-way stream first.
        stream: BinaryIO = data
        spool = None
        if not (hasattr(data, "seekable") and data.seekable()):
            spool = tempfile.SpooledTemporaryFile(max_size=8 * MiB)  # noqa: SIM115
            while chunk := data.read(MiB):
                spool.write(chunk)
            spool.seek(0)
            stream = spool  # type: ignore[assignment]
        origin = stream.tell()

        def put() -> None:
            stream.seek(origin)
            self.bucket.put_object(full, stream, headers=headers)

        try:
            self._call("write", key, put)
        finally:
            if spool is not None:
                spool.close()

    def upload_file(
        self, local_path: Path, key: str, progress: ProgressCallback | None = None
    ) -> None:
        full = self._full(key)
        filename = str(local_path)  # a missing file raises FileNotFoundError, unretried
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        store = oss2.ResumableStore(root=str(self.checkpoint_dir))
        self._call(
            "upload",
            key,
            # A retry calls resumable_upload again, which resumes from the checkpoint.
            lambda: oss2.resumable_upload(
                self.bucket,
                full,
                filename,
                store=store,
                multipart_threshold=self.multipart_threshold,
                part_size=self.part_size,
                progress_callback=progress,
                num_threads=self.num_threads,
            ),
        )

    def download_file(
        self, key: str, local_path: Path, progress: ProgressCallback | None = None
    ) -> None:
        full = self._full(key)
        target = Path(local_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        # A stable temp name next to the target lets a retried ranged download resume.
        tmp = target.with_name(f".{target.name}.renderhub-part")
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        store = oss2.ResumableDownloadStore(root=str(self.checkpoint_dir))
        try:
            self._call(
                "download",
                key,
                lambda: oss2.resumable_download(
                    self.bucket,
                    full,
                    str(tmp),
                    multiget_threshold=self.multiget_threshold,
                    part_size=self.part_size,
                    progress_callback=progress,
                    num_threads=self.num_threads,
                    store=store,
                ),
            )
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            tmp.replace(target)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise

    def delete(self, key: str) -> None:
        full = self._full(key)
        self._call("delete", key, lambda: self.bucket.delete_object(full))

    def _raw_keys(self, full_prefix: str) -> Iterator[builtins.list[str]]:
        """Pages of every object key under ``full_prefix``, folder placeholders included."""
        token = ""
        while True:
            result = self._call(
                "list",
                self._relative(full_prefix),
                functools.partial(
                    self.bucket.list_objects_v2,
                    prefix=full_prefix,
                    continuation_token=token,
                    max_keys=BATCH_DELETE_SIZE,
                ),
            )
            keys = [obj.key for obj in result.object_list]
            if keys:
                yield keys
            if not result.is_truncated:
                return
            token = result.next_continuation_token

    def delete_prefix(self, prefix: str) -> int:
        prefix = normalize_key(prefix, is_prefix=True)
        if not prefix:
            raise InvalidKey("refusing to delete everything in the storage root")
        count = 0
        for keys in self._raw_keys(self.prefix + prefix):
            result = self._call(
                "delete", prefix, functools.partial(self.bucket.batch_delete_objects, keys)
            )
            count += sum(1 for k in result.deleted_keys if not k.endswith("/"))
        return count

    # --- links -------------------------------------------------------------------------

    def signed_url(self, key: str, expires: int = 3600) -> str:
        if int(expires) < 1:
            raise ValueError("expires must be at least one second")
        full = self._full(key)
        return self.bucket.sign_url(
            "GET", full, int(expires), slash_safe=True, params=link_params(posixpath.basename(full))
        )
