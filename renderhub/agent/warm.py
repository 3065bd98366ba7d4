"""A renderer kept running between the chunks of one job on one slot.

Every chunk used to start Blender again: loading the scene and the render kernels took
1 to 3 s a chunk, so cutting a job into many small chunks (to end a job's slots together)
cost more than it saved. In a session (``python -m renderhub.agent --session``) the agent
starts Blender once with a small driver in place of ``-f {frame_list}`` and gives it each
chunk's frames on its standard input; every other argument is the software's own, so the
scene is loaded, and its options applied, exactly as a chunk of its own would. The driver
renders each frame as ``-f`` does (an animation render of that one frame: the same
``Fra:``, ``Saved:`` and `` Time:`` lines) and prints :data:`DONE` on both its outputs
after the chunk: the chunk ends when both came, so a line it printed last on either
stream is in this chunk's log, not the next one's.

Nothing it prints is believed about files: each frame is looked up and decoded in the
output folder as always (:mod:`.outputs`). Only templates that end ``-f {frame_list}``
with the ``blender`` parser (the built-in Blender) are driven; any other software runs
one process per chunk as before.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .pipes import LineSplitter, OutputPump
from .spec import Spec

DONE = "RenderHub: chunk rendered"
CLOSE_GRACE = 3.0  # seconds for a driven Blender to quit once its input closed

# Runs inside Blender, in the sandbox: a line per chunk, its token then its frames. Each
# frame is rendered as ``-f`` does, at that frame with the scene's own range left alone
# (stamps and drivers may read it), saved to the frame's own path from the ``-o`` pattern.
# The token comes back with the marker: a line a scene makes Blender print (an object's
# name holding a line break) cannot end a chunk early.
DRIVER = f"""
import sys
import bpy
scene = bpy.context.scene
pattern = scene.render.filepath
while True:
    line = sys.stdin.readline()
    if not line:
        break
    token, *frames = line.split()
    for word in frames:
        frame = int(word)
        scene.frame_set(frame)
        scene.render.filepath = scene.render.frame_path(frame=frame)
        try:
            bpy.ops.render.render(write_still=True)
        except Exception as exc:
            for text in (str(exc).strip() or type(exc).__name__).splitlines():
                print(text if text.startswith("Error") else "Error: " + text, flush=True)
        finally:
            scene.render.filepath = pattern
    print({DONE!r}, token, flush=True)
    print({DONE!r}, token, file=sys.stderr, flush=True)
"""


def driven_argv(spec: Spec, argv: list[str]) -> list[str] | None:
    """``argv`` with the driver in place of its trailing ``-f FRAMES``, or None when the
    software is not one the driver knows (its template must end ``-f {frame_list}``)."""
    if spec.progress_parser != "blender" or spec.command[-2:] != ["-f", "{frame_list}"]:
        return None
    return [*argv[:-2], "--python-expr", DRIVER]


@dataclass
class WarmRenderer:
    """A driven renderer and its output, which outlive any one chunk."""

    key: tuple[object, ...]
    proc: subprocess.Popen[bytes]
    pump: OutputPump = field(init=False)
    splitters: dict[str, LineSplitter] = field(init=False)
    chunks: int = 0

    def __post_init__(self) -> None:
        self.pump = OutputPump(self.proc)
        self.splitters = {"stdout": LineSplitter(), "stderr": LineSplitter()}

    def alive(self) -> bool:
        return self.proc.poll() is None and len(self.pump.open_streams) == 2

    def send(self, token: str, frames: list[int]) -> bool:
        """Ask for the chunk's frames; False if the renderer no longer reads its input."""
        assert self.proc.stdin is not None
        self.chunks += 1
        try:
            self.proc.stdin.write((" ".join([token, *map(str, frames)]) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            return False
        return True

    def close(self, grace: float = CLOSE_GRACE) -> None:
        """End of input: the driver returns and Blender quits; killed if it does not."""
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError, ValueError):
                self.proc.stdin.close()
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class WarmSlot:
    """The one renderer a session keeps; a chunk that needs another replaces it.

    Renderers are started by a thread of the slot's own that lives as long as it: bwrap's
    ``--die-with-parent`` (and the kernel's parent-death signal under it) follows the
    thread that started the process, and a chunk's thread ends with its chunk. Made in
    the session's main thread, that thread keeps normal priority (:mod:`.idle`).
    """

    def __init__(self) -> None:
        self.renderer: WarmRenderer | None = None
        self.launcher = ThreadPoolExecutor(1, thread_name_prefix="renderer-launcher")
        self.launcher.submit(int).result()  # its thread starts now, from this one

    def get(
        self, key: tuple[object, ...], start: Callable[[], subprocess.Popen[bytes]]
    ) -> tuple[WarmRenderer, bool]:
        """The renderer for ``key`` and whether it was running already."""
        if self.renderer is not None and self.renderer.key == key and self.renderer.alive():
            return self.renderer, True
        self.close()
        self.renderer = WarmRenderer(key, self.launcher.submit(start).result())
        return self.renderer, False

    def drop(self) -> None:
        """Forget the renderer after a chunk that did not end cleanly (killed if alive)."""
        renderer, self.renderer = self.renderer, None
        if renderer is not None and renderer.proc.poll() is None:
            renderer.proc.kill()
            renderer.proc.wait()

    def close(self) -> None:
        renderer, self.renderer = self.renderer, None
        if renderer is not None:
            renderer.close()

    def shutdown(self) -> None:
        """Close the renderer and end the launcher: the session is over."""
        self.close()
        self.launcher.shutdown()


def clear_outputs(output_dir: str) -> None:
    """Remove what an earlier chunk left in the renderer's folder (its checked frames were
    moved out; anything still there is from a frame that failed), so a file of another
    chunk is never taken for this one's."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        with contextlib.suppress(OSError):
            if path.is_file() or path.is_symlink():
                path.unlink()
