"""The files a .blend file references, read without Blender: ``read_references(path)``.

Every image (single, sequence, UDIM set, movie), linked library, sound, movie clip, font,
volume, cache (Alembic/USD cache files, point caches, fluid caches), external mesh data,
light profile and sequencer strip, as blender-asset-tracer finds them, with the path as
Blender wrote it (``//`` relative to the file, or absolute on whatever machine saved it).
Packed files are not references. Libraries are not opened here: the caller resolves each
library's path in its own terms (storage or disk) and reads it in turn.

Like :mod:`.facts`, the reader runs in a child Python process (this file by path, with
``-I -P``) that caps its memory and what it may decompress, under a timeout: a hostile
file becomes a :class:`FactsError`, never a hang. The pure helpers below
(:func:`is_relative`, :func:`sequence_pattern`, :func:`translate`) say how Blender reads a path.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

try:  # the child process runs this file alone, without the renderhub package
    from .facts import (
        DEFAULT_MAX_BYTES,
        DEFAULT_MAX_MEMORY,
        DEFAULT_TIMEOUT,
        BlendFacts,
        FactsError,
        facts_from,
        run_reader,
    )
except ImportError:  # pragma: no cover - the child
    DEFAULT_MAX_BYTES, DEFAULT_MAX_MEMORY, DEFAULT_TIMEOUT = 4 << 30, 2 << 30, 20.0

MAX_REFERENCES = 20_000  # a file with more is read up to here

# Kinds, as users name them.
IMAGE, SEQUENCE, UDIM, MOVIE = "image", "image sequence", "UDIM set", "movie"
LIBRARY, SOUND, CLIP, FONT = "library", "sound", "movie clip", "font"
VOLUME, CACHE, MESH, LIGHT, STRIP = "volume", "cache", "mesh data", "light profile", "strip"
_IMAGE_SOURCES = {1: IMAGE, 2: SEQUENCE, 3: MOVIE, 6: UDIM}
_KINDS = {b"LI": LIBRARY, b"SO": SOUND, b"MC": CLIP, b"VF": FONT, b"VO": VOLUME}
_KINDS |= {b"CF": CACHE, b"ME": MESH, b"OB": CACHE, b"LA": LIGHT, b"SC": STRIP}
_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")
_TILE_TOKENS = {"<UDIM>": r"\d{4}", "<UVTILE>": r"u\d+_v\d+"}


@dataclass(frozen=True)
class Reference:
    kind: str
    path: str  # as Blender wrote it: //relative or absolute on the machine that saved it
    sequence: bool  # several files: a numbered sequence, UDIM tiles, or a folder
    owner: str  # the data-block that uses it (IMchecker, LIlib.blend, OBfluid.modifiers[0])


def read_references(
    path: Path | str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_memory: int = DEFAULT_MAX_MEMORY,
) -> list[Reference]:
    """The references of the .blend file at ``path``; raises :class:`FactsError`."""
    path = Path(path)
    answer = _run_child(path, [], "", timeout, max_bytes, max_memory)
    return [Reference(**ref) for ref in answer["references"]]


@dataclass(frozen=True)
class SceneReading:
    """A scene file's facts and references from one reading; a part that could not be
    read holds why."""

    facts_answer: dict[str, Any]
    references_answer: dict[str, Any]

    def facts(self) -> BlendFacts:
        """The facts (:mod:`.facts`); raises :class:`FactsError`."""
        if "error" in self.facts_answer:
            raise FactsError(str(self.facts_answer["error"]))
        return facts_from(self.facts_answer)

    def references(self) -> list[Reference]:
        """The references; raises :class:`FactsError`."""
        if "error" in self.references_answer:
            raise FactsError(str(self.references_answer["error"]))
        return [Reference(**ref) for ref in self.references_answer["references"]]


def read_scene(
    path: Path | str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_memory: int = DEFAULT_MAX_MEMORY,
) -> SceneReading:
    """The facts and the references of the .blend file at ``path`` in one child process
    (one start, the file opened and unpacked once: what a submit needs of its scene).
    A file the child cannot open at all raises :class:`FactsError`."""
    answer = _run_child(Path(path), ["with-facts"], "", timeout, max_bytes, max_memory)
    return SceneReading(answer["facts"], answer["references"])


def rewrite_references(
    path: Path | str,
    changes: dict[str, str],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_memory: int = DEFAULT_MAX_MEMORY,
) -> int:
    """Rewrite, in the .blend file at ``path`` itself, each reference whose path (as Blender
    wrote it) is a key of ``changes`` to its value; the number of fields rewritten. Meant
    for a copy: never give it a scene's original. Raises :class:`FactsError`."""
    path = Path(path)
    answer = _run_child(path, ["rewrite"], json.dumps(changes), timeout, max_bytes, max_memory)
    return int(answer["rewritten"])


def _run_child(
    path: Path, extra: list[str], stdin: str, timeout: float, max_bytes: int, max_memory: int
) -> dict[str, Any]:
    return run_reader(__file__, path, extra, stdin, timeout, max_bytes, max_memory)


# --- how Blender reads a path -------------------------------------------------------------


def is_relative(path: str) -> bool:
    """Blender's relative paths start with ``//`` (the folder of the file that holds them)."""
    return path.startswith("//")


def relative_part(path: str) -> str:
    """A ``//`` path's part after the ``//``, with Windows separators made ``/``."""
    return path[2:].replace("\\", "/")


def is_windows_path(path: str) -> bool:
    return bool(_DRIVE.match(path)) or path.startswith("\\\\")


def translate(path: str, prefixes: list[tuple[str, str]]) -> tuple[str, str] | None:
    """``(target, rest)`` for the first ``(prefix, target)`` whose prefix ``path`` starts
    with; ``rest`` is the part after it, with ``/`` separators. A Windows prefix
    (``P:\\projects\\``) matches whatever the case and separators, as Windows does."""
    for head, target in prefixes:
        windows = is_windows_path(head)
        text = path.replace("\\", "/") if windows else path
        head = head.replace("\\", "/").rstrip("/") + "/"
        matched = text.lower().startswith(head.lower()) if windows else text.startswith(head)
        if matched:
            return target, text[len(head) :]
    return None


def sequence_pattern(name: str) -> re.Pattern[str] | None:
    """The file names a sequence's or UDIM set's name stands for: ``tile.<UDIM>.png`` is
    ``tile.1001.png``…; ``frame_0001.png`` is every ``frame_<digits>.png``. None for a name
    with neither (Blender then reads that one file)."""
    for token, digits in _TILE_TOKENS.items():
        if token in name:
            before, _, after = name.partition(token)
            return re.compile(re.escape(before) + digits + re.escape(after) + r"\Z")
    stem, dot, suffix = name.rpartition(".")
    if not dot:
        stem, suffix = name, ""
    match = re.search(r"\d+\Z", stem)
    if match is None:
        return None
    tail = re.escape("." + suffix) if dot else ""
    return re.compile(re.escape(stem[: match.start()]) + r"\d+" + tail + r"\Z")


# --- the child process: standard library and blender-asset-tracer only ------------------


def _child(argv: list[str]) -> int:
    import resource
    import signal

    path, max_bytes, max_memory = Path(argv[0]), int(argv[1]), int(argv[2])
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a decompression bomb: EFBIG, not death
    resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))
    if max_memory > 0:
        resource.setrlimit(resource.RLIMIT_AS, (max_memory, max_memory))
    try:
        if argv[3:4] == ["rewrite"]:
            answer: dict[str, Any] = {"rewritten": _rewrite(path, json.load(sys.stdin))}
        elif argv[3:4] == ["with-facts"]:
            answer = _read_both(path, max_bytes)
        else:
            answer = {"references": [asdict(r) for r in _read(path)]}
    except MemoryError:
        answer = {"error": "reading it needed more memory than the reader may use"}
    except OSError as exc:
        if exc.errno == 27:  # EFBIG
            answer = {"error": f"it unpacks to more than {max_bytes} bytes"}
        else:
            answer = {"error": f"cannot read it: {exc.strerror or exc}"}
    except Exception as exc:  # any parse failure of a malformed file
        text = (str(exc) or type(exc).__name__)[:200]
        answer = {"error": f"it is not a .blend file this reader understands ({text})"}
    sys.stdout.write(json.dumps(answer))
    return 0


def _usages(bfile: Any) -> Any:
    """(block, usage) for every reference of this file (not of the libraries it links)."""
    import logging

    from blender_asset_tracer import trace
    from blender_asset_tracer.trace import blocks2assets

    logging.disable(logging.CRITICAL)  # BAT warns on stderr about every missing file
    # ID blocks are what this file links from libraries: the library reads those.
    blocks = [b for b in bfile.blocks if b.code not in (b"DATA", b"ID")]
    for count, block in enumerate(trace.asset_holding_blocks(blocks)):
        if count > MAX_REFERENCES * 10:
            return
        for usage in blocks2assets.iter_assets(block):
            yield block, usage


def _read(path: Path) -> list[Reference]:
    from blender_asset_tracer import blendfile

    blendfile.set_strict_pointer_mode(False)
    with blendfile.BlendFile(path) as bfile:
        return _references_of(bfile)


def _references_of(bfile: Any) -> list[Reference]:
    found: dict[tuple[str, str], Reference] = {}
    for block, usage in _usages(bfile):
        ref = _reference(block, usage)
        if ref is not None:
            found.setdefault((ref.kind, ref.path), ref)
        if len(found) >= MAX_REFERENCES:
            break
    return list(found.values())


def _read_both(path: Path, max_bytes: int) -> dict[str, Any]:
    """Facts and references of one open file, each part answering its own failure; a file
    that does not open fails the whole child (both parts would say the same)."""
    import importlib

    from blender_asset_tracer import blendfile

    sys.path.insert(0, str(Path(__file__).parent))  # facts.py beside this file, alone too
    facts = importlib.import_module("facts")

    blendfile.set_strict_pointer_mode(False)

    def both() -> dict[str, Any]:
        with blendfile.BlendFile(path) as bfile:
            return {
                "facts": facts.guarded(lambda: facts.facts_of(bfile), max_bytes),
                "references": facts.guarded(
                    lambda: {"references": [asdict(r) for r in _references_of(bfile)]},
                    max_bytes,
                ),
            }

    answer: dict[str, Any] = facts.guarded(both, max_bytes)  # the facts' words for a bad file
    return {"facts": answer, "references": answer} if "error" in answer else answer


def _rewrite(path: Path, changes: dict[str, str]) -> int:
    from blender_asset_tracer import blendfile

    blendfile.set_strict_pointer_mode(False)
    rewritten = 0
    with blendfile.BlendFile(path, mode="r+b") as bfile:
        for _block, usage in list(_usages(bfile)):
            old = bytes(usage.asset_path).decode("utf-8", errors="replace")
            new = changes.get(old)
            if new is None:
                continue
            if usage.path_full_field is not None:
                field, value = usage.path_full_field, new
            else:  # a sequencer strip: folder and file name apart; only the folder moves
                field, value = usage.path_dir_field, new.rsplit("/", 1)[0] + "/"
            data = value.encode("utf-8")
            if len(data) >= field.name.array_size:
                raise ValueError(f"the path {value!r} is too long for the field it goes in")
            usage.block.set(field.name.name_only, data)
            rewritten += 1
    return rewritten


def _reference(block: Any, usage: Any) -> Reference | None:
    path = bytes(usage.asset_path).decode("utf-8", errors="replace")
    if not path or path == "<builtin>":
        return None
    kind = _KINDS.get(block.code, IMAGE)
    if block.code == b"IM":
        kind = _IMAGE_SOURCES.get(block.get(b"source", default=1), IMAGE)
    owner = usage.block_name
    owner = owner.decode("utf-8", errors="replace") if isinstance(owner, bytes) else str(owner)
    return Reference(kind=kind, path=path, sequence=usage.is_sequence, owner=owner)


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
