"""Resumable chunked uploads into local storage, without Django.

A file arrives in pieces, each at the offset the previous one ended, into a partial file
next to its final name (hidden from listings by the temp prefix, and on the same file
system, so the final ``os.replace`` is atomic). A killed upload leaves only the partial,
never a half file under the final name; a client that lost its place asks for the
partial's size and goes on from there. Every partial is noted in a registry folder, so
:func:`clean_stale` finds abandoned ones without walking the whole storage.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import time
from pathlib import Path
from typing import Protocol

from .base import StorageError
from .local import TMP_PREFIX, LocalStorage, file_mode, fsync_dir

__all__ = [
    "PARTIAL_PREFIX",
    "OffsetMismatch",
    "abort",
    "append",
    "clean_stale",
    "finish",
    "finished",
    "is_open",
    "offset",
    "open_uploads",
    "partial_for",
]

PARTIAL_PREFIX = TMP_PREFIX + "upload-"
UPLOAD_ID_RE = re.compile(r"^[0-9a-f]{32}\Z")
PIECE = 1024 * 1024


class Readable(Protocol):
    """What pieces are read from: a file, or a Django request streaming its body."""

    def read(self, n: int, /) -> bytes: ...


class OffsetMismatch(StorageError):
    """A piece that does not start where the partial file ends (a retry, or a race)."""

    def __init__(self, expected: int) -> None:
        super().__init__(f"the upload continues at byte {expected}")
        self.expected = expected


def partial_for(
    store: LocalStorage,
    key: str,
    upload_id: str,
    registry: Path,
    *,
    new: bool = False,
    size: int = 0,
    owner: str = "",
) -> Path:
    """The partial file of upload ``upload_id`` to ``key``; ``new`` notes it in ``registry``
    with its ``size`` and ``owner`` (an upload is noted once, when it starts, and forgotten
    when it ends)."""
    if not UPLOAD_ID_RE.match(upload_id):
        raise StorageError("malformed upload id")
    partial = store.target_path(key).parent / f"{PARTIAL_PREFIX}{upload_id}"
    if new:
        registry.mkdir(parents=True, exist_ok=True)
        (registry / upload_id).write_text(f"{partial}\n{int(size)} {owner}", encoding="utf-8")
    return partial


def open_uploads(registry: Path) -> list[tuple[str, int, Path]]:
    """``(owner, size, partial)`` of every upload started and not yet ended: what they may
    still write is reserved, so many parallel starts cannot promise the same free bytes."""
    found = []
    try:
        notes = list(registry.iterdir())
    except FileNotFoundError:
        return []
    for note in notes:
        if not UPLOAD_ID_RE.match(note.name):
            continue
        try:
            path, _, rest = note.read_text(encoding="utf-8").partition("\n")
            size, _, owner = rest.partition(" ")
            found.append((owner, int(size or 0), Path(path)))
        except (OSError, UnicodeDecodeError, ValueError):
            continue
    return found


def is_open(registry: Path, upload_id: str) -> bool:
    """Whether the upload was started and is not yet completed, cancelled or cleaned away."""
    return bool(UPLOAD_ID_RE.match(upload_id)) and (registry / upload_id).exists()


def finished(partial: Path, dest: Path, size: int, registry: Path, upload_id: str) -> bool:
    """Whether the upload was completed already (a repeated completion whose answer was lost)."""
    if partial.exists() or (registry / upload_id).exists():
        return False
    try:
        return dest.is_file() and dest.stat().st_size == size
    except OSError:
        return False


def offset(partial: Path) -> int:
    """How many bytes of the upload have arrived."""
    try:
        return partial.lstat().st_size
    except (FileNotFoundError, NotADirectoryError):
        return 0


def append(partial: Path, at: int, stream: Readable, length: int, size: int) -> int:
    """Write ``length`` bytes of ``stream`` at byte ``at`` of an upload of ``size`` bytes;
    returns the new offset. Raises OffsetMismatch when ``at`` is not where the file ends;
    a piece cut short is taken back, so the offset stays where it was."""
    if at < 0 or length < 0 or at + length > size:
        raise StorageError(f"bytes {at} to {at + length} do not fit a file of {size} bytes")
    # O_NOFOLLOW: a symlink planted under the partial's name is not written through.
    try:
        partial.parent.mkdir(parents=True, exist_ok=True)  # fails where a file has the name
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, file_mode())
    except OSError as exc:  # ELOOP: something planted a link there
        raise StorageError(f"cannot write the upload: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # two requests for one piece: one wins, one mismatches
        current = os.fstat(fd).st_size
        if current != at:
            raise OffsetMismatch(current)
        os.lseek(fd, at, os.SEEK_SET)
        left = length
        try:
            while left:
                piece = stream.read(min(PIECE, left))
                if not piece:
                    raise StorageError(f"the piece ended {left} bytes early")
                os.write(fd, piece)
                left -= len(piece)
        except BaseException:
            os.ftruncate(fd, at)
            raise
        return at + length
    finally:
        os.close(fd)


def finish(partial: Path, dest: Path, size: int, registry: Path, upload_id: str) -> None:
    """Move a complete partial to ``dest`` atomically; raises when bytes are missing."""
    have = offset(partial)
    if have != size:
        raise StorageError(f"the upload has {have} of {size} bytes; send the rest first")
    if not partial.exists():  # an empty file: nothing was appended
        try:
            partial.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, file_mode()))
        except OSError as exc:
            raise StorageError(f"cannot write the upload: {exc.strerror}") from exc
    with open(partial, "rb") as fh:
        os.fsync(fh.fileno())
    partial.chmod(file_mode())
    try:
        partial.replace(dest)
    except OSError as exc:
        raise StorageError(f"cannot put the file at {dest.name}: {exc.strerror}") from exc
    fsync_dir(dest.parent)
    with contextlib.suppress(FileNotFoundError):
        (registry / upload_id).unlink()


def abort(partial: Path, registry: Path, upload_id: str) -> None:
    for path in (partial, registry / upload_id):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def clean_stale(registry: Path, older_than: float, now: float | None = None) -> int:
    """Delete partials untouched for ``older_than`` seconds; returns how many went."""
    now = time.time() if now is None else now
    removed = 0
    try:
        notes = list(registry.iterdir())
    except FileNotFoundError:
        return 0
    for note in notes:
        if not UPLOAD_ID_RE.match(note.name):
            continue
        try:
            partial = Path(note.read_text(encoding="utf-8").partition("\n")[0])
            touched = max(note.stat().st_mtime, _mtime(partial))
        except (OSError, UnicodeDecodeError):
            continue
        if now - touched < older_than:
            continue
        # Only ever a file we named: the registry says where, the prefix says what.
        if partial.name == PARTIAL_PREFIX + note.name:
            with contextlib.suppress(OSError):  # gone, or its folder became a file
                partial.unlink()
                removed += 1
        with contextlib.suppress(FileNotFoundError):
            note.unlink()
    return removed


def _mtime(path: Path) -> float:
    try:
        return path.lstat().st_mtime
    except OSError:  # gone, or a file took a folder's name on its path: nothing to keep
        return 0.0
