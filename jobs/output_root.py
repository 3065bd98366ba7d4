"""Where the local worker's renderers write: a folder of each chunk under the project's
node temp output dir, made here, and only where nobody else decides what it points to.

A project's node temp output dir is a path on this machine when its jobs run on the local
worker. Set into the local storage it would let a member's renderer write among another
project's files; into the work folders, beside other chunks' logs. On a shared /tmp,
another user who made the folder first (or a parent of it), or who may rename in one of
its folders, could turn it into a link and choose where frames go, or read them. So the
path is resolved once, checked, and every folder on it, from / down to the chunk's, is
then a real folder (not a link) of ours or root's that nobody else may rename in (writable
by others only with the sticky bit, as /tmp). Once that holds nobody else can change where
the path leads, so the agent and the sandbox can use it.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from renderhub import sandbox_paths


class OutputRootRefused(Exception):
    """The chunk cannot have an output folder here. ``machine``: because of this machine's
    folders (another worker may do), else the project's setting (the same everywhere)."""

    def __init__(self, reason: str, *, machine: bool = False) -> None:
        super().__init__(reason)
        self.machine = machine


def chunk_output_dir(root: str, job: int, name: str) -> Path:
    """``root/job-N/name`` made (private) and returned, or ``OutputRootRefused``."""
    if (refusal := sandbox_paths.output_root_refusal(root)) is not None:
        raise OutputRootRefused(f"The project's node temp output dir: {refusal}")
    try:
        folder = Path(root).resolve() / f"job-{job}" / name
        for part in (*reversed(folder.parents), folder):
            _make_safe(part)
        unchanged = folder.resolve() == folder
    except (OSError, RuntimeError) as exc:
        reason = f"cannot make the chunk's output folder under {root}: {exc}"
        raise OutputRootRefused(reason, machine=True) from exc
    if not unchanged or sandbox_paths.output_root_refusal(str(folder)) is not None:
        raise OutputRootRefused(f"{root} changed while its folders were checked.", machine=True)
    return folder


def _make_safe(folder: Path) -> None:
    """``folder`` made if missing; refused unless a real folder that only we (or root,
    for a folder we may not write) control."""
    try:
        info = folder.lstat()
    except FileNotFoundError:
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=0o700)
        info = folder.lstat()
    if not stat.S_ISDIR(info.st_mode):
        raise OutputRootRefused(
            f"{folder} is a link or a file, not a folder: renderers' frames would go where "
            "someone else decides.",
            machine=True,
        )
    if info.st_uid not in (os.getuid(), 0):
        raise OutputRootRefused(
            f"{folder} belongs to another user, who could redirect the frames written under "
            "it; use a folder of RenderHub's user (like RENDER_WORK_DIR/output/).",
            machine=True,
        )
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not info.st_mode & stat.S_ISVTX:
        raise OutputRootRefused(
            f"{folder} is writable by other users without the sticky bit, so they could "
            "rename in it and redirect the frames; remove their write access (chmod go-w).",
            machine=True,
        )
