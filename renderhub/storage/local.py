"""Local-disk storage: one directory is the root, keys are paths below it.

Framework-free except :meth:`LocalStorage.signed_url`, which needs Django's signer.
Writes are atomic (temp file in the target directory, fsync, ``os.replace``), so a
reader sees either the old file or the complete new one, never a partial file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import tempfile
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

from .base import (
    Entry,
    InvalidKey,
    Listing,
    NotFound,
    ProgressCallback,
    StorageError,
    normalize_key,
)

__all__ = ["SIGNED_URL_SALT", "LocalStorage"]

SIGNED_URL_SALT = "renderhub.storage.signed"
SIGNED_URL_PATH = "/storage/signed/{token}/{filename}"

CHUNK_SIZE = 1024 * 1024
# Temp files live next to their target (os.replace must not cross file systems);
# listings hide them so a half-written upload never shows up as an output.
TMP_PREFIX = ".renderhub-tmp-"


def _read_umask() -> int:
    # os.umask can only be read by setting it; do it once, at import.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_read_umask()


def _is_listable_name(name: str) -> bool:
    """Names that cannot be keys (undecodable bytes, control characters) are skipped."""
    if name.startswith(TMP_PREFIX):
        return False
    try:
        return normalize_key(name) == name
    except InvalidKey:
        return False


def _check_range(start: int | None, end: int | None) -> tuple[int, int | None]:
    first = 0 if start is None else start
    if first < 0 or (end is not None and end < first):
        raise ValueError(f"invalid byte range {start}-{end}")
    return first, end


def file_mode() -> int:
    """The mode new files get (0o666 less the process umask), as ``open`` would give."""
    return _FILE_MODE


def fsync_dir(path: Path) -> None:
    # Makes the rename itself durable; not every file system allows it, hence best effort.
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _temp_file_in(directory: Path) -> tuple[int, Path]:
    """A new temp file in ``directory``, which is created if need be."""
    for _ in range(2):
        directory.mkdir(parents=True, exist_ok=True)
        try:
            fd, name = tempfile.mkstemp(dir=directory, prefix=TMP_PREFIX)
            return fd, Path(name)
        except FileNotFoundError:
            pass  # a concurrent delete pruned the (then empty) directory: make it again
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=directory, prefix=TMP_PREFIX)
    return fd, Path(name)


def atomic_write(
    dest: Path,
    chunks: Iterable[bytes],
    *,
    total: int | None = None,
    progress: ProgressCallback | None = None,
) -> int:
    """Write ``chunks`` to ``dest`` so that ``dest`` only ever holds complete content."""
    fd, tmp = _temp_file_in(dest.parent)
    done = 0
    try:
        with os.fdopen(fd, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
            fh.flush()
            os.fsync(fh.fileno())
        if progress is not None and done == 0:
            progress(0, total)
        tmp.chmod(_FILE_MODE)
        tmp.replace(dest)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(dest.parent)
    return done


def _read_chunks(fh: BinaryIO) -> Iterator[bytes]:
    while chunk := fh.read(CHUNK_SIZE):
        yield chunk


class LocalStorage:
    """A directory on this machine; ``root`` need not exist until the first write."""

    def __init__(self, root: Path | str) -> None:
        root = Path(root)
        if not root.is_absolute():
            raise StorageError(f"the local storage root must be an absolute path, not {root}")
        self.root = root.resolve()
        self.root_url = self.root.as_uri()

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LocalStorage) and other.root == self.root

    def __hash__(self) -> int:
        return hash(("local", self.root))

    # --- paths -------------------------------------------------------------------------

    def _inside(self, path: Path) -> bool:
        return path == self.root or path.is_relative_to(self.root)

    def _path(self, key: str, *, is_prefix: bool = False, follow: bool = True) -> Path:
        """The real path of ``key``; symlinks are resolved and must stay inside the root.

        ``follow=False`` resolves only the parent, so writing or deleting a symlink
        replaces or removes the link itself rather than what it points to.
        """
        normalized = normalize_key(key, is_prefix=is_prefix)
        if not normalized:
            return self.root
        path = self.root / normalized
        path = path.resolve() if follow else path.parent.resolve() / path.name
        if not self._inside(path if follow else path.parent):
            raise InvalidKey(f"{key!r} resolves outside the storage root")
        return path

    def target_path(self, key: str) -> Path:
        """Where a write of ``key`` lands: its folder resolved (and inside the root), the
        name itself not followed (writing replaces a symlink, never what it points to)."""
        return self._path(key, follow=False)

    def url_for(self, key: str) -> str:
        normalized = normalize_key(key, allow_empty=True, is_prefix=key.endswith("/"))
        return self.root_url.rstrip("/") + "/" + quote(normalized, safe="/")

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    # --- listing -----------------------------------------------------------------------

    def _children(self, directory: Path, dir_key: str) -> list[tuple[str, os.DirEntry[str]]]:
        """Listable children as (key, entry), dirs keyed with a trailing '/', sorted.

        Sorting children this way yields global key order on recursion: every key below
        ``d/`` sorts between ``d/`` and any sibling that sorts after it.
        """
        try:
            with os.scandir(directory) as it:
                raw = list(it)
        except (FileNotFoundError, NotADirectoryError):
            return []
        children = []
        for entry in raw:
            if not _is_listable_name(entry.name):
                continue
            try:
                if entry.is_symlink() and not self._inside(Path(entry.path).resolve()):
                    continue  # a link out of the root is not part of this storage
                if entry.is_dir():
                    children.append((dir_key + entry.name + "/", entry))
                elif entry.is_file():
                    children.append((dir_key + entry.name, entry))
            except OSError:
                continue  # vanished or unreadable while listing
        children.sort(key=lambda child: child[0])
        return children

    def _entries(
        self,
        directory: Path,
        dir_key: str,
        *,
        marker: str | None,
        recursive: bool,
        ancestors: frozenset[tuple[int, int]] = frozenset(),
    ) -> Iterator[Entry]:
        """Entries below ``directory`` in key order, lazily; only keys after ``marker``."""
        try:
            st = directory.stat()
        except OSError:
            return
        ident = (st.st_dev, st.st_ino)
        if ident in ancestors:
            return  # a symlink loop
        ancestors = ancestors | {ident}
        for key, entry in self._children(directory, dir_key):
            is_dir = key.endswith("/")
            if marker is not None and key <= marker and not (is_dir and marker.startswith(key)):
                continue  # this entry (and for a dir, its whole subtree) was on earlier pages
            if is_dir:
                path = Path(entry.path)
                if recursive:
                    yield from self._entries(
                        path, key, marker=marker, recursive=True, ancestors=ancestors
                    )
                elif (marker is None or key > marker) and self._has_files(path, ancestors):
                    yield Entry(key=key, is_dir=True)
                continue
            try:
                fst = entry.stat()
            except OSError:
                continue
            yield Entry(
                key=key,
                is_dir=False,
                size=fst.st_size,
                modified=datetime.fromtimestamp(fst.st_mtime, tz=UTC),
                etag=f"{fst.st_mtime_ns:x}-{fst.st_size:x}",
            )

    def _has_files(self, directory: Path, ancestors: frozenset[tuple[int, int]]) -> bool:
        # Directories without files do not exist on OSS; hide them here too.
        entries = self._entries(directory, "", marker=None, recursive=True, ancestors=ancestors)
        return next(entries, None) is not None

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
        if marker:
            marker = normalize_key(marker, is_prefix=marker.endswith("/"))
        entries = list(
            islice(
                self._entries(
                    self._path(prefix, is_prefix=True),
                    prefix,
                    marker=marker or None,
                    recursive=delimiter is None,
                ),
                limit + 1,
            )
        )
        if len(entries) > limit:
            entries = entries[:limit]
            return Listing(entries, entries[-1].key)
        return Listing(entries, None)

    def walk(self, prefix: str = "") -> Iterator[Entry]:
        prefix = normalize_key(prefix, is_prefix=True)
        yield from self._entries(
            self._path(prefix, is_prefix=True), prefix, marker=None, recursive=True
        )

    # --- objects -----------------------------------------------------------------------

    def stat(self, key: str) -> Entry:
        path = self._path(key)
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"{self.url_for(key)} does not exist") from None
        if not path.is_file():
            raise NotFound(f"{self.url_for(key)} is not a file")
        return Entry(
            key=normalize_key(key),
            is_dir=False,
            size=st.st_size,
            modified=datetime.fromtimestamp(st.st_mtime, tz=UTC),
            etag=f"{st.st_mtime_ns:x}-{st.st_size:x}",
        )

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except NotFound:
            return False
        return True

    def _open(self, key: str) -> BinaryIO:
        path = self._path(key)
        try:
            return open(path, "rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise NotFound(f"{self.url_for(key)} does not exist") from None

    def read(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        first, last = _check_range(start, end)
        with self._open(key) as fh:
            fh.seek(first)
            return fh.read() if last is None else fh.read(last - first + 1)

    def _write_chunks(
        self,
        key: str,
        chunks: Iterable[bytes],
        total: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> None:
        path = self._path(key, follow=False)
        try:
            atomic_write(path, chunks, total=total, progress=progress)
        except (IsADirectoryError, NotADirectoryError, FileExistsError) as exc:
            # e.g. writing "a" where "a/" holds files, or "a/b" where "a" is a file
            raise StorageError(f"cannot write {self.url_for(key)}: {exc.strerror}") from exc
        except OSError as exc:
            if exc.errno == errno.ENOTEMPTY:
                raise StorageError(f"cannot write {self.url_for(key)}: it is a folder") from exc
            raise

    def write_blocks(self, key: str, blocks: Iterable[bytes]) -> None:
        """Write what ``blocks`` yields; an error raised by it leaves nothing at ``key``."""
        self._write_chunks(key, blocks)

    def write(self, key: str, data: bytes | BinaryIO, content_type: str | None = None) -> None:
        # content_type has no place on a plain file system; it is accepted for the interface.
        if isinstance(data, bytes | bytearray | memoryview):
            self._write_chunks(key, [bytes(data)])
        else:
            self._write_chunks(key, _read_chunks(data))

    def upload_file(
        self, local_path: Path, key: str, progress: ProgressCallback | None = None
    ) -> None:
        with open(local_path, "rb") as fh:
            total = os.fstat(fh.fileno()).st_size
            self._write_chunks(key, _read_chunks(fh), total, progress)

    def download_file(
        self, key: str, local_path: Path, progress: ProgressCallback | None = None
    ) -> None:
        with self._open(key) as fh:
            total = os.fstat(fh.fileno()).st_size
            atomic_write(Path(local_path), _read_chunks(fh), total=total, progress=progress)

    def _prune_empty_dirs(self, directory: Path) -> None:
        """Remove ``directory`` and its ancestors below the root while they are empty."""
        while directory != self.root and self._inside(directory):
            try:
                directory.rmdir()
            except FileNotFoundError:
                pass  # already gone: keep climbing
            except OSError:
                return  # not empty: stop
            directory = directory.parent

    def delete(self, key: str) -> None:
        path = self._path(key, follow=False)
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError):
            return
        except (IsADirectoryError, PermissionError) as exc:
            if path.is_dir():
                return  # a folder is not an object; deleting "it" is a no-op, as on OSS
            raise StorageError(f"cannot delete {self.url_for(key)}: {exc.strerror}") from exc
        self._prune_empty_dirs(path.parent)

    def delete_prefix(self, prefix: str) -> int:
        prefix = normalize_key(prefix, is_prefix=True)
        if not prefix:
            raise InvalidKey("refusing to delete everything in the storage root")
        # File by file (not rmtree) so in-flight temp files of concurrent writers survive
        # and the count is exactly what walk() showed.
        count = 0
        for entry in list(self.walk(prefix)):
            with contextlib.suppress(FileNotFoundError):
                self._path(entry.key, follow=False).unlink()
                count += 1
        top = self._path(prefix, is_prefix=True)
        # Bottom-up, not following links: only now-empty folders go.
        for dirpath, _dirnames, _files in os.walk(top, topdown=False):
            with contextlib.suppress(OSError):
                Path(dirpath).rmdir()
        self._prune_empty_dirs(top)
        return count

    # --- links -------------------------------------------------------------------------

    def signed_url(self, key: str, expires: int = 3600) -> str:
        """A relative link served by ``renderhub.storage.views.signed_download``.

        The token names the file relative to ``LOCAL_STORAGE_ROOT`` (never an absolute
        path) and carries ``expires``; the view checks both the signature and the age.
        """
        from django.conf import settings
        from django.core import signing

        if int(expires) < 1:
            raise ValueError("expires must be at least one second")
        path = self._path(key)
        served_root = Path(settings.LOCAL_STORAGE_ROOT).resolve()
        if not path.is_relative_to(served_root):
            raise StorageError(
                f"{self.url_for(key)} is outside LOCAL_STORAGE_ROOT; no link can serve it"
            )
        relative = path.relative_to(served_root).as_posix()
        token = signing.TimestampSigner(salt=SIGNED_URL_SALT).sign_object(
            {"k": relative, "e": int(expires)}, compress=True
        )
        return SIGNED_URL_PATH.format(
            token=token, filename=quote(posixpath.basename(relative), safe="")
        )
