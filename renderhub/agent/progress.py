"""Progress parsers: turn a renderer's output lines into per-frame updates.

A parser sees every output line (stdout and stderr) as it arrives and returns
:class:`Update` objects; :meth:`finish` is called once after the renderer exits. The
runner owns the bookkeeping (which frames are done, publishing, failures): a parser only
reports what the renderer said.

``blender`` understands Blender 3.x background output::

    Fra:1 Mem:10.41M (Peak 11.01M) | Time:00:00.07 | Remaining:00:00.01 | ... | Sample 1/4
    Saved: '/out/shot_0001.png'
     Time: 00:00.23 (Saving: 00:00.15)
    Error: Render error (Invalid argument) cannot save: '/proc/nope/x_01.png'

``Fra:N`` starts frame N, each ``Saved: '<path>'`` adds an output to the frame (the
frame number is read from the file name when it matches ``output_name``, else the current
``Fra:`` frame), and the frame is done at the `` Time:`` line Blender prints after saving
(or at the next ``Fra:``, or when the renderer exits) so a frame that saves several files
(stereo views) reports them all. ``Error:`` lines are kept for failure reasons.

A line saying that what the command asked for is not in the scene (``Can't find scene:
'Shot01' in file: …``, ``Error: Cannot render, no camera``, ``No camera found in scene
…``) is reported as ``missing``: Blender carries on regardless (it renders the default
scene, or nothing) and may exit 0, so the runner stops it and fails the chunk with that line.

A frame's seconds are the time that `` Time:`` line states (``MM:SS.hh``, or
``HH:MM:SS.hh`` past an hour): Blender's own measurement, right however late the agent
reads the line (a starved agent reads a whole frame's lines at once). Only a frame closed
without one is timed by the agent's clock, from its first ``Fra:`` line.

``none`` reads nothing; after a clean exit each frame is done with the files in
``output_dir`` named like ``output_name`` with that frame's number (any extension).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .template import output_file_name, split_output_name

PROGRESS_INTERVAL = 0.5  # seconds between progress updates of one frame (<= 2/s)
MAX_ERRORS = 50

_FRA = re.compile(r"^Fra:(-?\d+)\b(.*)$")
_SAVED = re.compile(r"""^Saved:\s*(['"])(.*)\1\s*$""")
_TIME = re.compile(r"^\s+Time:\s*\d")
_TIMECODE = re.compile(r"^\s+Time:\s*(?:(\d+):)?(\d+):(\d+(?:\.\d+)?)")  # [HH:]MM:SS.hh
_ERROR = re.compile(r"^\s*(?:Error|ERROR)\b\s*[:|]")
_MISSING = re.compile(
    r"^\s*(?:Error:\s*)?(?:Can't find scene: .*|Cannot render, no camera\b.*"
    r"|No camera found in scene .*)$"
)


@dataclass
class Update:
    """One thing the renderer told us: frame_started, progress, frame_done, log or missing
    (what it was asked to render is not there; ``message`` is its line)."""

    event: str
    frame: int | None = None
    message: str = ""
    outputs: list[str] = field(default_factory=list)
    seconds: float | None = None


def output_regex(output_name: str) -> re.Pattern[str]:
    """Match file names made from ``output_name`` (any frame number, any extension)."""
    prefix, _digits, suffix = split_output_name(output_name)
    return re.compile(rf"{re.escape(prefix)}(\d+){re.escape(suffix)}(?:\..+)?\Z")


class Parser:
    """Base parser: ignores output, reports nothing."""

    def __init__(self, frames: Iterable[int], output_dir: str, output_name: str) -> None:
        self.frames = list(frames)
        self.output_dir = output_dir
        self.output_name = output_name
        self.errors: list[str] = []

    def feed(self, line: str, stream: str) -> list[Update]:
        """Keep error lines (``Error: ...``) for the failure reason; report nothing."""
        if _ERROR.match(line):
            self.errors.append(line.strip())
            del self.errors[:-MAX_ERRORS]
        return []

    def tick(self) -> list[Update]:
        """Called about every 0.1 s: updates held back by rate limiting, now due."""
        return []

    def finish(self, exit_code: int) -> list[Update]:
        return []


class NoneParser(Parser):
    """Finds each frame's outputs in output_dir once the renderer exited 0."""

    def finish(self, exit_code: int) -> list[Update]:
        if exit_code != 0:
            return []
        pattern = output_regex(self.output_name)
        by_frame: dict[int, list[str]] = {}
        directory = Path(self.output_dir)
        names = sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []
        for name in names:
            match = pattern.match(name)
            path = directory / name
            if match and path.is_file():
                by_frame.setdefault(int(match.group(1)), []).append(str(path))
        updates = []
        for frame in self.frames:
            # The number must be padded as output_name says (shot_01 is not shot_001).
            stem = output_file_name(self.output_name, frame)
            outputs = [p for p in by_frame.get(frame, []) if _has_stem(p, stem)]
            if outputs:
                updates.append(Update("frame_done", frame, outputs=outputs))
        return updates


def _has_stem(path: str, stem: str) -> bool:
    name = Path(path).name
    return name == stem or name.startswith(stem + ".")


class BlenderParser(Parser):
    """Parses Blender's background render output (see the module docstring)."""

    def __init__(
        self,
        frames: Iterable[int],
        output_dir: str,
        output_name: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(frames, output_dir, output_name)
        self.clock = clock
        self.current: int | None = None
        self.started_at: dict[int, float] = {}
        self.last_progress: dict[int, float] = {}
        self.held: Update | None = None  # latest progress of the current frame not sent yet
        self.pending: dict[int, list[str]] = {}  # frame -> outputs saved, not reported yet
        self.name_pattern = output_regex(output_name)

    def feed(self, line: str, stream: str) -> list[Update]:
        if _MISSING.match(line):
            super().feed(line, stream)
            return [Update("missing", message=line.strip())]
        if match := _FRA.match(line):
            return self._fra(int(match.group(1)), match.group(2))
        if match := _SAVED.match(line):
            return self._saved(match.group(2))
        if _TIME.match(line):
            return self._flush(took=_blender_seconds(line))
        return super().feed(line, stream)

    def finish(self, exit_code: int) -> list[Update]:
        return self._flush()

    def _fra(self, frame: int, rest: str) -> list[Update]:
        updates: list[Update] = []
        now = self.clock()
        if frame != self.current:
            updates += self._flush()
            self.current = frame
            self.started_at[frame] = now
            updates.append(Update("frame_started", frame))
        if message := _progress_message(rest):
            self.held = Update("progress", frame, message=message)
            updates += self.tick()
        return updates

    def tick(self) -> list[Update]:
        held = self.held
        frame = held.frame if held is not None else None
        if held is None or frame is None or frame != self.current:
            self.held = None
            return []
        now = self.clock()
        last = self.last_progress.get(frame)
        if last is not None and now - last < PROGRESS_INTERVAL:
            return []
        self.last_progress[frame] = now
        self.held = None
        return [held]

    def _saved(self, path: str) -> list[Update]:
        frame = self._frame_of(path)
        if frame is None:
            return [Update("log", message=f"renderer saved {path!r} outside any frame")]
        self.pending.setdefault(frame, []).append(path)
        return []

    def _frame_of(self, path: str) -> int | None:
        match = self.name_pattern.match(Path(path).name)
        return int(match.group(1)) if match else self.current

    def _flush(self, took: float | None = None) -> list[Update]:
        """Report the frames saved since the last flush; ``took``: Blender's time for them."""
        if self.held is not None and self.held.frame in self.pending:
            self.held = None  # the frame is done: its last progress is stale
        now = self.clock()
        updates = []
        for frame, outputs in self.pending.items():
            seconds = took
            if seconds is None and (start := self.started_at.get(frame)) is not None:
                seconds = now - start  # closed by the next Fra: or the exit: our clock
            if seconds is not None:
                seconds = round(seconds, 3)
            updates.append(Update("frame_done", frame, outputs=outputs, seconds=seconds))
        self.pending = {}
        return updates


def _blender_seconds(line: str) -> float | None:
    """The seconds of a `` Time: 01:02:03.45 (Saving: ...)`` line; None if unreadable."""
    match = _TIMECODE.match(line)
    if match is None:
        return None
    hours, minutes, seconds = match.groups()
    return int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds)


def _progress_message(rest: str) -> str:
    """``Time:.. | Remaining:.. | Scene, ViewLayer | Sample 3/16`` without memory stats."""
    parts = [p.strip() for p in rest.split("|")]
    kept = [p for p in parts if p and not p.startswith(("Mem:", "Peak"))]
    return " | ".join(kept)


PARSER_CLASSES: dict[str, type[Parser]] = {"blender": BlenderParser, "none": NoneParser}


def make_parser(name: str, frames: Iterable[int], output_dir: str, output_name: str) -> Parser:
    return PARSER_CLASSES[name](frames, output_dir, output_name)
