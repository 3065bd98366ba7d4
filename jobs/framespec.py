"""Frame specs: ``1-48``, ``1-10,20,30-40``, ``1-100x5`` (every 5th frame)."""

from __future__ import annotations

import re

MAX_FRAME = 10_000_000
# Digits are counted before int() sees them: a 5000-digit number makes int() raise a plain
# ValueError (Python's int_max_str_digits) instead of a FrameSpecError naming the problem.
MAX_DIGITS = len(str(MAX_FRAME))
PART_RE = re.compile(r"^(-?\d+)(?:-(-?\d+)(?:x(\d+))?)?$", re.ASCII)


class FrameSpecError(ValueError):
    """A frame spec that cannot be parsed; the message names the problem."""


def _show(text: str, width: int = 40) -> str:
    """``text`` quoted for a message, shortened: a spec may be megabytes of form input."""
    return repr(text if len(text) <= width else text[: width - 1] + "…")


def parse_frame_spec(spec: str, *, max_frames: int = 100_000) -> list[int]:
    """The frames of ``spec`` in ascending order; FrameSpecError names what is wrong."""
    if not isinstance(spec, str) or not spec.strip():
        raise FrameSpecError("Give frames like 1-48, 1-10,20,30-40 or 1-100x5.")
    frames: list[int] = []
    last = None
    for raw in spec.replace(" ", "").split(","):
        if not raw:
            raise FrameSpecError(f"Empty part in frame spec {_show(spec)} (two commas in a row?).")
        match = PART_RE.match(raw)
        if not match:
            raise FrameSpecError(
                f"{_show(raw)} is not a frame, a range like 1-48, or a stepped range like 1-100x5."
            )
        for digits in match.groups():
            if digits is not None and len(digits.lstrip("-")) > MAX_DIGITS:
                raise FrameSpecError(
                    f"{_show(digits, 16)} has {len(digits.lstrip('-'))} digits: frame numbers "
                    f"and steps go up to {MAX_FRAME}."
                )
        start = int(match.group(1))
        end = int(match.group(2)) if match.group(2) is not None else start
        step = int(match.group(3)) if match.group(3) is not None else 1
        for value in (start, end):
            if not 0 <= value <= MAX_FRAME:
                raise FrameSpecError(f"Frame {value} in {raw!r} is outside 0-{MAX_FRAME}.")
        if end < start:
            raise FrameSpecError(f"Range {raw!r} runs backwards; write it as {end}-{start}.")
        if step < 1:
            raise FrameSpecError(f"Step in {raw!r} must be at least 1.")
        if last is not None and start <= last:
            raise FrameSpecError(
                f"Frames must be in ascending order without repeats: {raw!r} comes after {last}."
            )
        count = (end - start) // step + 1
        if len(frames) + count > max_frames:
            raise FrameSpecError(f"Frame spec {_show(spec)} has more than {max_frames} frames.")
        frames.extend(range(start, end + 1, step))
        last = frames[-1]
    return frames


def format_frames(frames: list[int]) -> str:
    """The shortest spec for ``frames`` (ascending): ``[1,2,3,7]`` -> ``1-3,7``."""
    parts: list[str] = []
    i = 0
    while i < len(frames):
        j = i
        while j + 1 < len(frames) and frames[j + 1] == frames[j] + 1:
            j += 1
        parts.append(str(frames[i]) if i == j else f"{frames[i]}-{frames[j]}")
        i = j + 1
    return ",".join(parts)


def split_even(frames: list[int], nodes: int) -> list[list[int]]:
    """``nodes`` contiguous chunks whose sizes differ by at most one (no empty chunks)."""
    nodes = max(1, min(nodes, len(frames)))
    size, extra = divmod(len(frames), nodes)
    chunks, start = [], 0
    for i in range(nodes):
        end = start + size + (1 if i < extra else 0)
        chunks.append(frames[start:end])
        start = end
    return chunks


def split_by_size(frames: list[int], chunk_size: int) -> list[list[int]]:
    """Chunks of ``chunk_size`` frames, in order; the last may be shorter."""
    return [frames[i : i + chunk_size] for i in range(0, len(frames), chunk_size)]
