"""Shared helpers of the ``manage.py`` commands: tables, durations, progress, users, copies.

Foundation code: it imports no domain app, so every app's commands (and the staff pages'
formatting filters) can use it. Domain lookups (``get_job``, ``get_project``, ``get_run``)
live in their apps' own ``cli`` modules.
"""

from __future__ import annotations

import argparse
import functools
import os
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError, OutputWrapper
from django.utils import timezone

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from renderhub.storage.base import Storage

Out = OutputWrapper | TextIO

MAX_ID = 2**63 - 1  # a bigger number would overflow the database's integer, not just miss


def parse_id(value: object) -> int | None:
    """A row id from request text: ASCII digits within the database's range, else None."""
    text = str(value or "").strip()
    if not (text.isascii() and text.isdigit()):
        return None
    number = int(text)
    return number if 0 < number <= MAX_ID else None


# --- formatting -------------------------------------------------------------------------


def format_duration(seconds: float | None) -> str:
    """``0:12``, ``12:34``, ``1:02:03``, ``2d 1:02:03``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    total = max(0, int(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"
    return f"{days}d {hours}:{minutes:02}:{secs:02}" if days else text


def format_time(moment: datetime | None) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def format_size(size: int | float | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def plural(count: int, word: str) -> str:
    """``1 file``, ``2 files``."""
    return f"{count} {word}{'' if count == 1 else 's'}"


def first_line(text: str, width: int = 70) -> str:
    """A reason shortened for a table cell."""
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    return line if len(line) <= width else line[: width - 1] + "…"


def print_table(
    out: Out, headers: Sequence[str], rows: Iterable[Iterable[object]], right: Sequence[int] = ()
) -> None:
    """Columns padded to their widest cell; ``right`` lists columns aligned right (numbers)."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        padded = (
            v.rjust(w) if i in right else v.ljust(w)
            for i, (v, w) in enumerate(zip(values, widths, strict=True))
        )
        return "  ".join(padded).rstrip()

    _write_line(out, line([h.upper() for h in headers]))
    for row in cells:
        _write_line(out, line(row))


def _write(out: Out, text: str) -> None:
    if isinstance(out, OutputWrapper):
        out.write(text, ending="")
    else:
        out.write(text)
    out.flush()


def _write_line(out: Out, text: str) -> None:
    _write(out, text + "\n")


# --- progress -------------------------------------------------------------------------


class ProgressBar:
    """``[#####-----] 24/48 frames  0:12 elapsed``.

    On a terminal the line is redrawn in place with ``\\r``; otherwise (a log file, CI,
    a pipe) a plain line is printed at most every ``interval`` seconds, so logs stay short.
    """

    def __init__(
        self,
        out: Out,
        total: int,
        *,
        unit: str = "",
        fmt: Callable[[int], str] = str,
        width: int = 30,
        interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.out, self.total, self.unit, self.fmt, self.width = out, total, unit, fmt, width
        self.interval, self.clock = interval, clock
        self.tty = out.isatty() if hasattr(out, "isatty") else False
        self.started = clock()
        self.done = 0
        self.note = ""
        self._last_draw: float | None = None
        self._drawn_width = 0
        self._drawn: tuple[int, int, str] | None = None
        self.closed = False

    def render(self) -> str:
        fraction = min(1.0, self.done / self.total) if self.total else 1.0
        filled = round(fraction * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        count = f"{self.fmt(self.done)}/{self.fmt(self.total)}" + (
            f" {self.unit}" if self.unit else ""
        )
        elapsed = format_duration(self.clock() - self.started)
        note = f"  {self.note}" if self.note else ""
        return f"[{bar}] {count}{note}  {elapsed} elapsed"

    def update(self, done: int, total: int | None = None, note: str | None = None) -> None:
        self.done = done
        if total is not None:
            self.total = total
        if note is not None:
            self.note = note
        now = self.clock()
        # Terminals get at most ten redraws a second; logs one line per interval.
        pause = 0.1 if self.tty else self.interval
        if self._last_draw is None or now - self._last_draw >= pause:
            self._draw()

    def _draw(self) -> None:
        self._last_draw = self.clock()
        self._drawn = (self.done, self.total, self.note)
        text = self.render()
        if self.tty:
            _write(self.out, "\r" + text.ljust(self._drawn_width))
            self._drawn_width = len(text)
        else:
            _write_line(self.out, text)

    def close(self) -> None:
        """Draw the final state once and end the line."""
        if self.closed:
            return
        self.closed = True
        # A log already holding the final numbers needs no repeat; a terminal ends its line.
        if self.tty or self._drawn != (self.done, self.total, self.note):
            self._draw()
        if self.tty:
            _write(self.out, "\n")

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- users -------------------------------------------------------------------------------


def add_as_user_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--as-user",
        metavar="USERNAME",
        help="Act as this user: only their projects are visible (default: the operator, sees all).",
    )


def resolve_user(username: str | None) -> User | None:
    """The user named by ``--as-user``; None means the operator, who sees everything."""
    if not username:
        return None
    user_model = get_user_model()
    try:
        user = user_model._default_manager.get_by_natural_key(username)
    except user_model.DoesNotExist:
        raise CommandError(f"There is no user named {username!r}.") from None
    if not user.is_active:
        raise CommandError(f"User {username!r} is inactive.")
    return user


# --- copying folders ------------------------------------------------------------------


def local_files(root: Path) -> list[tuple[Path, str]]:
    """Files below ``root`` as (path, relative ``/`` name), sorted; a file is its own list."""
    if root.is_file():
        return [(root, root.name)]
    found: list[tuple[Path, str]] = []
    # os.walk does not follow links to folders, so a link loop cannot make this endless.
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath, name)
            if path.is_file():
                found.append((path, path.relative_to(root).as_posix()))
    return found


def upload_files(out: Out, backend: Storage, files: Sequence[tuple[Path, str]]) -> int:
    """Upload (local path, key) pairs with one progress bar over all bytes; returns bytes."""
    return _copy(
        out,
        [
            (functools.partial(backend.upload_file, path, key), path.stat().st_size)
            for path, key in files
        ],
    )


def download_files(out: Out, backend: Storage, files: Sequence[tuple[str, Path, int]]) -> int:
    """Download (key, local path, size) triples with one progress bar; returns bytes."""
    for _key, path, _size in files:
        path.parent.mkdir(parents=True, exist_ok=True)
    return _copy(
        out,
        [(functools.partial(backend.download_file, key, path), size) for key, path, size in files],
    )


def _copy(out: Out, steps: Sequence[tuple[Callable[..., None], int]]) -> int:
    """Run each ``copy(progress=…)``; Ctrl-C ends with a message instead of a traceback."""
    bar = ProgressBar(out, sum(size for _copy, size in steps), fmt=format_size)
    base = copied = 0
    with bar:
        try:
            for copy, size in steps:
                copy(progress=lambda done, _total, b=base: bar.update(b + done))
                base += size
                copied += 1
                bar.update(base)
        except KeyboardInterrupt:
            # Storage writes are atomic, so nothing half-copied is left behind.
            raise CommandError(
                f"Interrupted after copying {copied} of {len(steps)} files; "
                "run the same command again to copy them all.",
                returncode=130,
            ) from None
    return base
