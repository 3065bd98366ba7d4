"""The renderer's output: its pipes read in threads, split into lines, copied to logs."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import threading
from typing import IO

MAX_LINE = 1 << 20  # a "line" with no newline this long is parsed as it is
MAX_LOG_BYTES = 64 << 20  # per renderer stream and attempt
_LINE_END = re.compile(rb"\r\n|\r|\n")  # \r too: progress bars redraw with it


class OutputPump:
    """Reads the renderer's stdout and stderr in threads into one queue of chunks."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.queue: queue.Queue[tuple[str, bytes | None]] = queue.Queue()
        self.open_streams = {"stdout", "stderr"}
        for name, pipe in (("stdout", proc.stdout), ("stderr", proc.stderr)):
            thread = threading.Thread(target=self._read, args=(name, pipe), daemon=True)
            thread.start()

    def _read(self, name: str, pipe: IO[bytes] | None) -> None:
        assert pipe is not None
        try:
            while chunk := os.read(pipe.fileno(), 65536):
                self.queue.put((name, chunk))
        except OSError:
            pass
        finally:
            self.queue.put((name, None))

    def get(self, timeout: float) -> tuple[str, bytes | None] | None:
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            return None


class LineSplitter:
    """Bytes in, complete decoded lines out (the rest is kept for the next chunk)."""

    def __init__(self) -> None:
        self.buffer = b""

    def feed(self, chunk: bytes) -> list[str]:
        self.buffer += chunk
        *lines, self.buffer = _LINE_END.split(self.buffer)
        if len(self.buffer) > MAX_LINE:
            lines.append(self.buffer)
            self.buffer = b""
        return [line.decode("utf-8", "replace") for line in lines]

    def flush(self) -> list[str]:
        rest, self.buffer = self.buffer, b""
        return [rest.decode("utf-8", "replace")] if rest else []


def copy_to_log(log: IO[bytes], chunk: bytes) -> None:
    """Append to stdout.log or stderr.log, up to MAX_LOG_BYTES each (a chatty or hostile
    renderer must not fill the disk; its lines are still parsed)."""
    room = MAX_LOG_BYTES - log.tell()
    if room <= 0:
        return
    log.write(chunk[:room])
    if len(chunk) >= room:
        log.write(b"\n[RenderHub: log truncated at %d bytes]\n" % MAX_LOG_BYTES)
    log.flush()
