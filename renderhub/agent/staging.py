"""Staging: copy a chunk's inputs onto the node before the renderer starts."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .events import CancelFlag, Cancelled
from .spec import Input


@dataclass
class StageStats:
    files: int = 0
    bytes: int = 0
    skipped: int = 0
    broken: list[str] = field(default_factory=list)


def _same_file(src: os.stat_result, dst: Path) -> bool:
    """Size and mtime match (to the millisecond: file systems round differently)."""
    try:
        st = dst.stat()
    except OSError:
        return False
    return st.st_size == src.st_size and abs(st.st_mtime_ns - src.st_mtime_ns) < 1_000_000


def _copy_file(src: Path, dst: Path, stats: StageStats) -> None:
    src_stat = src.stat()
    if _same_file(src_stat, dst):
        stats.skipped += 1
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    # Copy under a temporary name: an interrupted copy never looks like a finished one.
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.part")
    try:
        shutil.copy2(src, tmp)
        tmp.replace(dst)
    finally:
        tmp.unlink(missing_ok=True)
    stats.files += 1
    stats.bytes += src_stat.st_size


def _copy_tree(src: Path, dst: Path, stats: StageStats, cancel: CancelFlag) -> None:
    """Copy a folder's files keeping the layout; symlinks are followed (loops skipped)."""
    seen = {src.resolve()}
    for root, dirs, files in os.walk(src, followlinks=True):
        here = Path(root)
        fresh = [d for d in sorted(dirs) if (here / d).resolve() not in seen]
        seen.update((here / d).resolve() for d in fresh)
        dirs[:] = fresh
        target = dst / here.relative_to(src)
        target.mkdir(parents=True, exist_ok=True)  # empty folders too
        for name in sorted(files):
            if cancel.requested:
                raise Cancelled
            if not (here / name).exists():
                stats.broken.append(str(here / name))  # a dangling symlink: nothing to copy
                continue
            _copy_file(here / name, target / name, stats)


def stage(inputs: Iterable[Input], cancel: CancelFlag) -> StageStats:
    """Copy each input; a directory tree keeps its layout under ``dst``."""
    stats = StageStats()
    for item in inputs:
        src, dst = Path(item.src), Path(item.dst)
        if src.is_dir():
            _copy_tree(src, dst, stats, cancel)
        else:
            if cancel.requested:
                raise Cancelled
            if item.dst.endswith("/") or dst.is_dir():
                dst = dst / src.name  # an existing folder (or a trailing /): copy into it
            _copy_file(src, dst, stats)
    return stats
