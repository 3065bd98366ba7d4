"""A stand-in renderer for the agent's tests: prints Blender-like lines, writes files.

Standard library only (it also runs under ``python -S``). For each frame it prints
``Fra:N ... | Sample i/4`` lines, writes ``--out`` with the frame number (``#`` run
zero-padded) plus ``.png``, then prints ``Saved: '<path>'`` and `` Time: ...``.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import struct
import sys
import time
import zlib
from pathlib import Path


def say(text: str, stream=sys.stdout) -> None:
    print(text, file=stream, flush=True)


def frame_path(pattern: str, frame: int) -> str:
    match = re.search(r"#+", pattern)
    if not match:
        return f"{pattern}{frame:04d}.png"
    digits = f"{frame:0{len(match.group())}d}"
    return f"{pattern[: match.start()]}{digits}{pattern[match.end() :]}.png"


def tiny_png(frame: int) -> bytes:
    """A real 2x1 PNG (it must decode: the agent checks frames), its colour from the frame."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 2, 1, 8, 2, 0, 0, 0)  # 2x1, 8-bit RGB
    row = b"\x00" + bytes([frame % 256, 80, 160]) * 2
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row))
        + chunk(b"IEND", b"")
    )


def ints(text: str) -> set[int]:
    return {int(x) for x in text.split(",") if x}


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True, help="output pattern, # = frame digits")
    p.add_argument("--frames", required=True, help="comma separated frames")
    p.add_argument("--skip", type=ints, default=set(), help="frames to fail saving")
    p.add_argument("--phantom", type=ints, default=set(), help="print Saved:, write nothing")
    p.add_argument("--crash-after", type=int, help="exit after saving this many frames")
    p.add_argument("--exit", type=int, default=0, help="exit code at the end (or crash)")
    p.add_argument("--stderr", default="", help="printed to stderr before exiting")
    p.add_argument("--delay", type=float, default=0.0, help="seconds per sample line")
    p.add_argument("--hang", type=int, help="hang at this frame (forever)")
    p.add_argument("--chatty", action="store_true", help="keep printing while hanging")
    p.add_argument("--ignore-term", action="store_true", help="ignore SIGTERM")
    p.add_argument("--pidfile", help="write our pid here")
    p.add_argument("--require", action="append", default=[], help="fail unless it exists")
    p.add_argument("--print-env", action="append", default=[], help="print this env var")
    p.add_argument("--no-saved-lines", action="store_true", help="write files silently")
    p.add_argument("--say", action="append", default=[], help="print this line first")
    return p.parse_args()


def hang(frame: int, chatty: bool) -> None:
    sample = 0
    while True:
        if chatty:
            sample += 1
            say(f"Fra:{frame} Mem:1.00M (Peak 1.00M) | Time:00:00.00 | Sample {sample}/999999")
        time.sleep(0.05)


def render(ns: argparse.Namespace, frame: int) -> None:
    for sample in (1, 2, 4):
        say(f"Fra:{frame} Mem:1.00M (Peak 1.00M) | Time:00:00.00 | Scene | Sample {sample}/4")
        time.sleep(ns.delay)
    if ns.hang == frame:
        hang(frame, ns.chatty)
    path = frame_path(ns.out, frame)
    if frame in ns.skip:
        say(f"Error: Render error (Invalid argument) cannot save: '{path}'")
    elif frame in ns.phantom:
        say(f"Saved: '{path}'")
    else:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(tiny_png(frame))
        if not ns.no_saved_lines:
            say(f"Saved: '{path}'")
    say(" Time: 00:00.01 (Saving: 00:00.00)")
    say("")


def main() -> int:
    ns = parse()
    if ns.ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if ns.pidfile:
        Path(ns.pidfile).write_text(str(os.getpid()))
    say("Blender 3.4.1 (fake)")
    for line in ns.say:
        say(line)
    for name in ns.print_env:
        say(f"env {name}={os.environ.get(name, '<unset>')}")
    for path in ns.require:
        if not Path(path).exists():
            say(f"Error: Cannot read file '{path}': No such file or directory")
            return 1
    for count, frame in enumerate(sorted(ints(ns.frames)), start=1):
        render(ns, frame)
        if ns.crash_after == count:
            break
    if ns.stderr:
        say(ns.stderr, sys.stderr)
    say("Blender quit")
    return ns.exit


if __name__ == "__main__":
    sys.exit(main())
