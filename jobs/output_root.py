"""Where the local worker's renderers write: a folder of each chunk under the project's
node temp output dir, made here, and only where nobody else decides what it points to.

A project's node temp output dir is a path on this machine when its jobs run on the local
worker. Set into the local storage it would let a member's renderer write among another
project's files; into the work folders, beside other chunks' logs. On a shared /tmp,
another user who made the folder first (or a parent of it) could turn it into a link and
choose where frames go, or read them. Such folders are refused before the agent starts.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from renderhub import sandbox_paths


class OutputRootRefused(Exception):
    """The project's node temp output dir cannot be used on this machine; the same on every
    attempt, so the chunk fails with this message."""


def chunk_output_dir(root: str, job: int, name: str) -> Path:
    """``root/job-N/name`` made (private) and returned, or ``OutputRootRefused``."""
    if (refusal := sandbox_paths.output_root_refusal(root)) is not None:
        raise OutputRootRefused(f"The project's node temp output dir: {refusal}")
    base = Path(root).resolve()
    try:
        _check_owned_path(base)  # before making anything in someone else's folder
        base.mkdir(mode=0o700, parents=True, exist_ok=True)
        _check_owned_path(base)
        job_dir = base / f"job-{job}"
        with contextlib.suppress(FileExistsError):
            job_dir.mkdir(mode=0o700)
        _check_ours(job_dir)
        folder = job_dir / name
        folder.mkdir(mode=0o700, exist_ok=True)
        _check_ours(folder)
    except OSError as exc:
        reason = f"cannot make the chunk's output folder under {root}: {exc}"
        raise OutputRootRefused(reason) from exc
    return folder


def _check_ours(folder: Path) -> None:
    info = folder.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise OutputRootRefused(
            f"{folder} is not a folder of RenderHub's own (a link, a file, or another "
            "user's): renderers' frames would go where someone else decides."
        )


def _check_owned_path(base: Path) -> None:
    """Each folder from / to ``base`` (links already resolved) is ours, or root's and not
    open to others' renames: writable by others only with the sticky bit (/tmp)."""
    uid = os.getuid()
    for folder in (base, *base.parents):
        try:
            info = folder.stat()
        except FileNotFoundError:
            continue  # made by us, if at all
        if info.st_uid == uid:
            continue
        shared = info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        if info.st_uid != 0 or (shared and not info.st_mode & stat.S_ISVTX):
            raise OutputRootRefused(
                f"{folder} belongs to another user or others may rename in it, so they "
                f"could redirect {base}; use a folder of RenderHub's user."
            )
