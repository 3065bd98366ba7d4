"""A .blend file's scene facts, read without Blender: ``read_scene_facts(path)``.

Each scene's name, frame range, resolution, render engine, camera and whether Cycles
denoising is on, plus the scene Blender renders when no ``-S`` names one (the file's
current scene). Read with blender-asset-tracer's blendfile reader, which also opens
gzip (Blender 2.x) and zstd (Blender 3.0+) compressed files.

Scene files come from project members, so a hostile file must not hang the submit page or
eat the machine: the reader runs in a child Python process (this file, run by path with
``-I -P``: standard library and blender-asset-tracer only) that caps its own memory and the
size of what it may decompress, under a wall-clock timeout. Every failure, whatever its
cause, becomes a :class:`FactsError` whose message says why, never a crash.

Denoising follows Blender 3.x: a property Blender never wrote has its default, and
``scene.cycles.use_denoising`` and each view layer's ``cycles.use_denoising`` default to
on; the final render is denoised when the scene's is on and so is a rendered view layer's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

MAX_SCENES = 500  # a file with more is read up to here
MAX_LIST_ITEMS = 10_000  # linked-list walks stop here (a hostile file can loop them)
DEFAULT_TIMEOUT = 20.0
DEFAULT_MAX_BYTES = 4 << 30  # the file, and what a compressed one unpacks to
DEFAULT_MAX_MEMORY = 2 << 30  # the reader's address space
VIEW_LAYER_RENDER = 1  # ViewLayer.flag: the layer is rendered
IDP_STRING, IDP_INT, IDP_GROUP, IDP_BOOLEAN = 0, 1, 6, 10


class FactsError(Exception):
    """The file's facts could not be read; the message says why, for users."""


@dataclass(frozen=True)
class SceneFacts:
    name: str
    frame_start: int
    frame_end: int
    resolution_x: int
    resolution_y: int
    resolution_percent: int
    engine: str  # CYCLES, BLENDER_EEVEE, BLENDER_WORKBENCH, or an add-on's
    camera: str | None  # the scene camera's object name
    denoising: bool  # Cycles would denoise the final render (whatever the engine now)

    @property
    def frame_range(self) -> str:
        return f"{self.frame_start}-{self.frame_end}"


@dataclass(frozen=True)
class BlendFacts:
    version: int  # the Blender that saved it: 304 is 3.4
    compressed: bool
    scenes: tuple[SceneFacts, ...]
    current: str | None  # the scene Blender renders when no -S names one

    def scene(self, name: str | None = None) -> SceneFacts | None:
        """The scene of that name; without one, the scene Blender renders by default."""
        wanted = self.current if name is None else name
        found = next((s for s in self.scenes if s.name == wanted), None)
        if found is None and name is None and self.scenes:
            return self.scenes[0]
        return found

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.scenes]


def read_scene_facts(
    path: Path | str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_memory: int = DEFAULT_MAX_MEMORY,
) -> BlendFacts:
    """The facts of the .blend file at ``path``; raises :class:`FactsError`."""
    return facts_from(run_reader(__file__, Path(path), [], "", timeout, max_bytes, max_memory))


def run_reader(
    script: str,
    path: Path,
    extra: list[str],
    stdin: str,
    timeout: float,
    max_bytes: int,
    max_memory: int,
) -> dict[str, Any]:
    """Run ``script`` (a reader of this package, standard library and BAT only) on the
    .blend file at ``path`` in a child process capped in time, memory and bytes written;
    its JSON answer, or :class:`FactsError` saying why there is none."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise FactsError(f"cannot open it: {exc.strerror or exc}") from None
    if size == 0:
        raise FactsError("the file is empty")
    if size > max_bytes:
        limit = size_text(max_bytes)
        raise FactsError(f"it is {size_text(size)}, over the {limit} the reader reads")
    with tempfile.TemporaryDirectory(prefix="renderhub-blend-") as scratch:
        # The scratch dir receives the decompressed copy of a compressed file.
        # -I: no environment, no user site; -P: not this folder on sys.path either.
        argv = [sys.executable, "-I", "-P", script, str(path.resolve()), str(max_bytes)]
        argv += [str(max_memory), *extra]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TMPDIR": scratch}
        try:
            proc = subprocess.run(
                argv,
                cwd=scratch,
                env=env,
                input=stdin.encode(),
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise FactsError(f"reading it took longer than {timeout:g} s") from None
        except OSError as exc:
            raise FactsError(f"the reader could not start: {exc}") from None
    try:
        answer = json.loads(proc.stdout.decode("utf-8") or "null")
    except (UnicodeDecodeError, json.JSONDecodeError):
        answer = None
    if isinstance(answer, dict) and "error" in answer:
        raise FactsError(str(answer["error"]))
    if proc.returncode != 0 or not isinstance(answer, dict):
        why = "out of memory or killed" if proc.returncode else "no answer"
        raise FactsError(f"the reader stopped ({why}, exit status {proc.returncode})")
    return answer


def facts_from(answer: dict[str, Any]) -> BlendFacts:
    """The child's answer as :class:`BlendFacts`."""
    scenes = tuple(SceneFacts(**scene) for scene in answer["scenes"])
    return BlendFacts(
        version=answer["version"],
        compressed=answer["compressed"],
        scenes=scenes,
        current=answer["current"],
    )


def size_text(size: int) -> str:
    """A size for messages: MiB from one MiB up, else bytes."""
    return f"{size / (1 << 20):.0f} MiB" if size >= 1 << 20 else f"{size} bytes"


# --- the child process: standard library and blender-asset-tracer only ------------------


def _child(argv: list[str]) -> int:
    import resource
    import signal

    path, max_bytes, max_memory = Path(argv[0]), int(argv[1]), int(argv[2])
    # Writing past RLIMIT_FSIZE fails with EFBIG instead of killing us: a decompression
    # bomb becomes an error message.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))
    if max_memory > 0:
        resource.setrlimit(resource.RLIMIT_AS, (max_memory, max_memory))
    answer = guarded(lambda: _read(path), max_bytes)
    sys.stdout.write(json.dumps(answer))
    return 0


def guarded(read: Callable[[], dict[str, Any]], max_bytes: int) -> dict[str, Any]:
    """``read()``'s answer, or ``{"error": why}`` for users when it failed (in the child)."""
    try:
        return read()
    except MemoryError:
        return {"error": "reading it needed more memory than the reader may use"}
    except OSError as exc:
        if exc.errno == 27:  # EFBIG
            return {"error": f"it unpacks to more than {size_text(max_bytes)}"}
        return {"error": f"cannot read it: {exc.strerror or exc}"}
    except Exception as exc:  # any parse failure of a malformed file
        try:
            return {"error": _describe(exc)}
        except Exception:
            return {"error": f"it is not a .blend file this reader understands ({exc!r})"}


def _describe(exc: Exception) -> str:
    from blender_asset_tracer.blendfile import exceptions

    if isinstance(exc, exceptions.BlendFileError):
        return f"not a .blend file ({exc.args[0] if exc.args else exc})"
    text = str(exc) or type(exc).__name__
    return f"it is not a .blend file this reader understands ({text[:200]})"


def _read(path: Path) -> dict[str, Any]:
    from blender_asset_tracer import blendfile

    blendfile.set_strict_pointer_mode(False)  # a dangling pointer reads as None
    with blendfile.BlendFile(path) as bfile:
        return facts_of(bfile)


def facts_of(bfile: Any) -> dict[str, Any]:
    """The facts of an open BAT ``BlendFile``, as the child answers them."""
    scenes = [_scene(block) for block in bfile.find_blocks_from_code(b"SC")[:MAX_SCENES]]
    current = None
    for glob in bfile.find_blocks_from_code(b"GLOB")[:1]:
        current = _id_name(glob.get_pointer(b"curscene", default=0))
    return {
        "version": bfile.header.version,
        "compressed": bfile.is_compressed,
        "scenes": [asdict(s) for s in scenes],
        "current": current,
    }


def _scene(block: Any) -> SceneFacts:
    engine = block.get((b"r", b"engine"), as_str=True)
    return SceneFacts(
        name=_id_name(block) or "",
        frame_start=block.get((b"r", b"sfra")),
        frame_end=block.get((b"r", b"efra")),
        resolution_x=block.get((b"r", b"xsch")),
        resolution_y=block.get((b"r", b"ysch")),
        resolution_percent=block.get((b"r", b"size")),
        engine=engine,
        camera=_id_name(block.get_pointer(b"camera", default=0)),
        denoising=_denoising(block),
    )


def _id_name(block: Any) -> str | None:
    """An ID block's name without its two-letter code (SCScene -> Scene)."""
    if block is None or not hasattr(block, "id_name") or not block.id_name:
        return None
    name: bytes = block.id_name
    return name[2:].decode("utf-8", errors="replace")


def _denoising(scene: Any) -> bool:
    settings = _group_value(scene.get_pointer((b"id", b"properties"), default=0), "cycles")
    if not _flag(settings, "use_denoising"):
        return False
    layer = scene.get_pointer((b"view_layers", b"first"), default=0)
    for _ in range(MAX_LIST_ITEMS):
        if layer is None:
            break
        if layer.get(b"flag") & VIEW_LAYER_RENDER:
            props = layer.get_pointer(b"id_properties", default=0)
            if _flag(_group_value(props, "cycles"), "use_denoising"):
                return True
        layer = layer.get_pointer(b"next", default=0)
    return False


def _flag(group: Any, name: str, default: bool = True) -> bool:
    """A boolean property of an IDProperty group; ``default`` when Blender wrote none."""
    prop = _group_value(group, name)
    if prop is None or prop.get(b"type") not in (IDP_INT, IDP_BOOLEAN):
        return default
    return bool(prop.get((b"data", b"val")))


def _group_value(group: Any, name: str) -> Any:
    """The child property ``name`` of an IDProperty group block, or None."""
    if group is None or group.get(b"type") != IDP_GROUP:
        return None
    child = group.get_pointer((b"data", b"group", b"first"), default=0)
    for _ in range(MAX_LIST_ITEMS):
        if child is None:
            return None
        if child.get(b"name", as_str=True) == name:
            return child
        child = child.get_pointer(b"next", default=0)
    return None


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
