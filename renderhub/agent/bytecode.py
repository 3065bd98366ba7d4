"""The renderer's own Python, compiled once per machine instead of at every start.

Blender's start-up runs much Python (the interface, the add-ons, Cycles' registration).
Python keeps compiled modules beside their sources, but a renderer cannot write there: in
the sandbox ``/usr`` is read-only, a worker that is not root may not write it either, and
Debian's package ships no bytecode. So every Blender compiled all of it again: on the
two-core machines measured, in the sandbox, 1.15 s to start Blender against 0.67 s with
the bytecode ready, paid by every slot of every job.

So a machine keeps those modules compiled in a folder of its own (the spec's
``bytecode_dir``), one prefix per renderer program, and that program's renderers see its
prefix read-only as their ``PYTHONPYCACHEPREFIX``:

* the first renderer start that finds it missing starts :func:`build` in a process of its
  own at idle priority, which runs only while the machine has a core to spare, or once
  ``WORTH_STARTS`` renderers started without it (that one, and any before the build
  ends, start as before: :func:`.idle.run_when_spare`). The build runs the program in
  the same sandbox as a render (no scene, no user settings: ``--factory-startup``),
  writing only a staging folder: every module it imported at start-up, then the rest of
  its own and of the standard library's (not installed packages). Its files are then
  made the worker's, read-only to others, and moved in;
* what a program's build writes only that program's renderers read: a template that
  names another program cannot change Blender's modules, and a job's parameters cannot
  name the program at all;
* nothing a render does can change it: the folder is the worker's and private, a render
  sees only its prefix, read-only, and Python checks each compiled module against its
  source (time and size) before using it;
* a stamp per program (its path, size and time) records the build: when a folder it
  read changed since (an upgraded Blender or Python) it builds again, a program whose
  Python ignores the environment is never given a prefix, and a failed build is tried
  again after :data:`RETRY_AFTER`.

Standard library only, as the rest of the agent.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import math
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from . import idle, sandbox
from .spec import Spec, inside

ENV = "PYTHONPYCACHEPREFIX"
LOCK = "build.lock"
BUILD_TIMEOUT = 600.0  # seconds running; its stops while the machine is busy do not count
RETRY_AFTER = 3600.0  # seconds before a failed build is tried again
# Renderer starts without the build before it runs anyway, at idle priority, though no
# core is spare: beside a render it costs that render 4 to 5 s once (BENCHMARKS.md), and
# each start without it about 0.5 s. Once the starts lost cost what running it costs, it
# runs (a node never idle would otherwise keep it stopped for good).
WORTH_STARTS = 10
MARK = "RenderHub bytecode: "
DESCRIBED = 500  # characters at most of :func:`describe` (the node row's column)
AGENT = [sys.executable, "-m", "renderhub.agent"]
# Runs inside the renderer, in its sandbox: every module it imported at start-up, then
# every other one of its own and the standard library's (a scene may import more),
# compiled to where its Python looks. ``sys.pycache_prefix`` came from the environment,
# or the renderer does not honour it and nothing is written. Installed packages and the
# home folder (the sandbox's /tmp) are left out.
BUILDER = """
import json, os, py_compile, re, sys

packages = re.compile("(site|dist)-packages")
home = os.path.expanduser("~")
folders = [p for p in sys.path if os.path.isabs(p) and os.path.isdir(p)]
folders = [p for p in folders if not p.startswith(home) and not packages.search(p)]

def each(paths):
    for folder in paths:
        for parent, names, files in os.walk(folder):
            names[:] = [n for n in names if n != "__pycache__" and not packages.search(n)]
            yield from (os.path.join(parent, f) for f in files if f.endswith(".py"))

prefix, seen, counts = sys.pycache_prefix, set(), {"startup": 0, "more": 0, "failed": 0}
started = [getattr(m, "__file__", None) for m in list(sys.modules.values())]
for kind, sources in (("startup", started), ("more", each(folders))):
    for source in sources:
        if not prefix or not source or not source.endswith(".py") or source in seen:
            continue
        seen.add(source)
        try:
            py_compile.compile(source, doraise=True)
            counts[kind] += 1
        except Exception:  # e.g. an add-on's sample file in another Python's syntax
            key = "failed" if kind == "more" else "startup_failed"
            counts[key] = counts.get(key, 0) + 1
times = {p: os.stat(p).st_mtime_ns for p in folders}
print("RenderHub bytecode:", json.dumps({"prefix": prefix or "", "folders": times, **counts}))
"""


def program_key(program: str) -> str:
    """Names the renderer program as it is now: another path, size or time is another."""
    real = Path(program).resolve()
    st = real.stat()
    text = f"{real}\0{st.st_size}\0{st.st_mtime_ns}"
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _private(path: Path, mode: int = 0o022) -> bool:
    """A real folder of ours that nobody else may write (``mode``: the bits refused)."""
    try:
        st = path.lstat()
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & mode


def _safe_above(path: Path) -> bool:
    """Every folder above ``path`` is root's or ours, and open to others only with the
    sticky bit (as /tmp): nobody else can swap ``path`` for a folder of theirs."""
    for parent in path.parents:
        try:
            st = parent.lstat()
        except OSError:
            return False
        shared = stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX
        if st.st_uid not in (0, os.geteuid()) or (st.st_mode & 0o022 and not shared):
            return False
    return True


def _usable(folder: Path) -> bool:
    return _private(folder, 0o077) and _safe_above(folder)


def _made(folder: Path) -> Path:
    """The folder, made if missing; one of ours that others could only read is closed."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if _private(folder):
        folder.chmod(0o700)
    return folder


def _read(folder: Path, key: str) -> dict[str, Any] | None:
    """The program's stamp, or None (none yet, or unreadable: built again)."""
    if not _usable(folder):
        return None
    try:
        record = json.loads((folder / f"renderer-{key}.json").read_text())
        float(record.get("at", 0))
    except (OSError, ValueError, TypeError, AttributeError):
        return None
    return record if isinstance(record, dict) else None


def _write(folder: Path, key: str, record: dict[str, object]) -> None:
    path = folder / f"renderer-{key}.json"
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps({**record, "at": time.time()}))
    tmp.replace(path)


def _unchanged(record: dict[str, Any]) -> bool:
    """The folders the build compiled from are as they were (no upgrade since)."""
    folders = record.get("folders")
    if not isinstance(folders, dict):
        return False
    for path, mtime in folders.items():
        try:
            if Path(path).stat().st_mtime_ns != mtime:
                return False
        except OSError:
            return False
    return True


def _counter(root: Path, key: str) -> Path:
    return root / f"missed-{key}"


def _start_missed(root: Path, key: str, *, only_while_building: bool = False) -> None:
    """Count a renderer start that went without the build under way (one byte each: slots
    starting at once all count)."""
    if only_while_building and (_read(root, key) or {}).get("state") != "building":
        return
    with contextlib.suppress(OSError):
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
        fd = os.open(_counter(root, key), flags, 0o600)
        try:
            os.write(fd, b".")
        finally:
            os.close(fd)


def _missed(root: Path, key: str) -> int:
    try:
        return _counter(root, key).lstat().st_size
    except OSError:
        return 0


def prefix_for(folder: str, program: str) -> str | None:
    """The program's compiled Python, when its build succeeded, nothing it compiled from
    changed since, and the folder is still as the build left it; None otherwise."""
    root, key = Path(folder), program_key(program)
    record = _read(root, key)
    prefix = root / f"pycache-{key}"
    if record is None or record.get("state") != "ready" or not _unchanged(record):
        return None
    return str(prefix) if _private(prefix) else None


def wanted(folder: str, program: str) -> bool:
    """Whether a build should start: none yet, one that is out of date, a failed one old
    enough to try again, or one that started so long ago that it must have died."""
    root, key = Path(folder), program_key(program)
    record = _read(root, key)
    if record is None or "program" not in record:  # none, or from before stamps named it
        return _usable(root) or not root.exists()
    age = time.time() - float(record.get("at", 0))
    state = record.get("state")
    if state == "ready":
        return not (_private(root / f"pycache-{key}") and _unchanged(record))
    if state == "building":
        return age > BUILD_TIMEOUT + 60
    if state == "failed":
        return age > RETRY_AFTER
    return False  # unsupported: the renderer ignores the variable


def describe(folder: str | None) -> str:
    """One line for an operator (the node's report): whether this machine's renderers
    start with their Python compiled, program by program, and if not, why."""
    if not folder:
        return "off: renderers compile their Python at every start"
    try:
        line = _described(Path(folder))
    except Exception as exc:  # never the end of a heartbeat (a loop of links, a bad stamp)
        line = f"{folder} could not be read ({exc}): renderers may compile their Python"
    return line[:DESCRIBED]


def _described(root: Path) -> str:
    folder = str(root)
    if root.exists() and not _usable(root):
        return f"{folder} is not a private folder: renderers compile their Python at every start"
    newest: dict[str, tuple[float, str, dict[str, Any]]] = {}
    for stamp in sorted(root.glob("renderer-*.json")):
        key = stamp.stem.removeprefix("renderer-")
        if (record := _read(root, key)) is None or not isinstance(record.get("program"), str):
            continue
        at = float(record.get("at", 0))
        if record["program"] not in newest or at > newest[record["program"]][0]:
            newest[record["program"]] = (at, key, record)
    if not newest:
        return "not built yet: the first Blender chunk here builds it"
    return "; ".join(_state(root, *newest[p][1:]) for p in sorted(newest))


def _state(root: Path, key: str, record: dict[str, Any]) -> str:
    program, state = record["program"], record.get("state")
    age = time.time() - float(record.get("at", 0))
    try:
        current = program_key(program) == key
    except OSError:
        return f"{program}: not found"
    if not current or (state == "ready" and not _unchanged(record)):
        return f"{program}: out of date (upgraded since), built again when it next starts"
    if state == "ready":
        if not _private(root / f"pycache-{key}"):
            return f"{program}: its compiled Python is missing, built again when it next starts"
        modules = int(record.get("startup", 0)) + int(record.get("more", 0))
        return f"{program}: ready ({modules:,} modules)"
    if state == "building":
        if age > BUILD_TIMEOUT + 60:
            return f"{program}: a build died, tried again when it next starts"
        if (more := WORTH_STARTS - _missed(root, key)) <= 0:
            return f"{program}: building ({WORTH_STARTS} renderers started without it)"
        return f"{program}: building whenever a core is spare (or after {more} more starts)"
    if state == "failed":
        reason = str(record.get("reason", "")).removeprefix(f"{program} ")[:200]
        wait = math.ceil((RETRY_AFTER - age) / 60)
        again = "when it next starts" if wait <= 0 else f"in {wait} min"
        return f"{program}: failed ({reason}), tried again {again}"
    return f"{program}: ignores {ENV}, compiles its Python at every start"


def for_render(spec: Spec, box: sandbox.Sandbox) -> tuple[sandbox.Sandbox, str | None]:
    """``box`` with the program's compiled Python (read-only, as its pycache prefix) when
    it is ready, else as it was; and a line for the chunk's log, if any. Asked once per
    renderer start: a start without it while its build waits is counted (``WORTH_STARTS``).

    The program must be named in the software's template itself, not by a job's
    parameters. When its bytecode is missing the build starts in the background, in a
    sandbox like ``box``, and this chunk goes on without it.

    Renderers never write bytecode themselves: beside the sources that would change the
    installed program (a worker that is root, with ``RENDER_SANDBOX=none``).
    """
    if spec.progress_parser != "blender":  # the built-in Blender's parser: a Blender
        return box, None
    box = dataclasses.replace(box, env={**box.env, "PYTHONDONTWRITEBYTECODE": "1"})
    folder, command = spec.bytecode_dir, spec.command
    if not folder or not command or "{" in command[0]:
        return box, None
    try:
        program = sandbox.find_program(command[0], box)
        if prefix := prefix_for(folder, program):
            env = {**box.env, ENV: prefix}
            box = dataclasses.replace(box, read_only=(*box.read_only, prefix), env=env)
            return box, f"renderers here start with their Python compiled in {prefix}"
        if not wanted(folder, program):
            _start_missed(Path(folder), program_key(program), only_while_building=True)
            return box, None
        root = _made(Path(folder))
        if not _usable(root):
            return box, f"{folder} is not a private folder: renderers compile their Python"
        record: dict[str, object] = {"state": "building", "program": program}
        _write(root, key := program_key(program), record)  # one spawn, not one a chunk
        _start_missed(root, key)
    except (OSError, sandbox.SandboxError):
        return box, None  # the chunk itself reports a missing program
    if start_build(folder, program, box) is None:
        return box, None
    return box, f"compiling {program}'s Python in the background, for its next starts"


def start_build(folder: str, program: str, box: sandbox.Sandbox) -> subprocess.Popen[bytes] | None:
    """``python -m renderhub.agent --bytecode FOLDER PROGRAM SANDBOX``, detached: the build
    outlives the chunk that asked for it. Its sandbox is the chunk's, less the chunk's own
    folders: of what the chunk may read, only the folder holding the program."""
    real = str(Path(program).resolve())
    how = {
        "kind": box.kind,
        "read_only": [p for p in box.read_only if inside(real, p) or inside(program, p)],
        "file_size": box.limits.file_size,
        "processes": box.limits.processes,
        "memory": box.limits.memory,
    }
    try:
        return subprocess.Popen(
            [*AGENT, "--bytecode", folder, program, json.dumps(how)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError:
        return None


def build(folder: str, program: str, how: dict[str, Any]) -> dict[str, object]:
    """Compile what ``program`` imports into ``folder``'s prefix for it; the stamp's record.

    One build at a time per folder (a lock; a second caller returns at once). Runs at
    idle priority, and only while a core is spare: it must not slow the renders it was
    started beside.
    """
    idle.lower_this_thread()
    root = _made(Path(folder))
    if not _usable(root):
        return {"state": "failed", "reason": f"{root} is not a private folder of this user"}
    fd = os.open(root / LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "r+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return {"state": "building", "reason": "another build is under way"}
        key = program_key(program)
        record = _read(root, key)
        if record is not None and record.get("state") != "building" and not wanted(folder, program):
            return {**record, "reason": "built already"}
        record = {**_compile(root, key, program, how), "program": program}
        _write(root, key, record)
        with contextlib.suppress(OSError):  # the next build counts its own
            _counter(root, key).unlink()
        return record


def _compile(root: Path, key: str, program: str, how: dict[str, Any]) -> dict[str, object]:
    staging = root / f".staging-{key}"
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "out").mkdir(mode=0o700, parents=True)
    box = sandbox.Sandbox(
        kind=str(how.get("kind", "bwrap")),
        read_only=tuple(how.get("read_only", ())),
        writable=(str(staging / "out"),),
        scratch=str(staging / "home"),
        env={ENV: str(staging / "out")},
        limits=sandbox.Limits(
            file_size=int(how.get("file_size", 0)),
            processes=int(how.get("processes", 0)),
            memory=int(how.get("memory", 0)),
        ),
        gpu=False,
    )
    argv = [program, "-b", "--factory-startup", "-noaudio", "--python-expr", BUILDER]
    cwd = "/tmp" if box.kind == "bwrap" else box.scratch  # noqa: S108

    def still_building() -> None:  # a build waiting for a spare core is not a dead one
        _write(root, key, {"state": "building", "program": program})

    try:
        still_building()
        with open(staging / "stdout", "w+b") as out, open(staging / "stderr", "w+b") as err:
            proc = sandbox.popen(argv, box, cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
            ended = idle.run_when_spare(
                proc,
                BUILD_TIMEOUT,
                still_here=still_building,
                go_anyway=lambda: _missed(root, key) >= WORTH_STARTS,
            )
            if not ended:
                return {"state": "failed", "reason": f"{program} took over {BUILD_TIMEOUT:.0f} s"}
            out.seek(0), err.seek(0)
            said, errors = out.read().decode(errors="replace"), err.read()
        record = _result(program, proc.returncode, said, errors)
        if record["state"] == "ready":
            _settle(staging / "out")
            _publish(root, key, staging / "out", program)
        return record
    except (OSError, sandbox.SandboxError) as exc:
        return {"state": "failed", "reason": f"{program} did not run: {exc}"}
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _result(program: str, code: int, out: str, err: bytes) -> dict[str, object]:
    for line in out.splitlines():
        if not line.startswith(MARK):
            continue
        try:
            found = json.loads(line[len(MARK) :])
            if not found.get("prefix"):
                return {"state": "unsupported", "reason": f"{program} ignores {ENV}"}
            counts = {k: int(found[k]) for k in ("startup", "more", "failed")}
            folders = {str(k): int(v) for k, v in dict(found["folders"]).items()}
        except (ValueError, TypeError, KeyError, AttributeError):
            return {"state": "failed", "reason": f"{program} gave no usable answer"}
        if found.get("startup_failed") or not counts["startup"]:
            return {"state": "failed", "reason": f"{program}'s start-up modules did not compile"}
        return {"state": "ready", "program": program, "folders": folders, **counts}
    tail = err.decode(errors="replace").strip().splitlines()[-1:] or [""]
    return {"state": "failed", "reason": f"{program} exited {code}: {tail[0]}"}


def _settle(out: Path) -> None:
    """Make what the sandboxed build wrote ours, folders 0755 and files 0644; anything but
    folders and regular files (links, FIFOs) is removed. Nobody else can reach it: it is
    inside the private folder, and the build's processes are gone."""
    uid, gid = os.geteuid(), os.getegid()
    for parent, folders, files in os.walk(out, topdown=True, followlinks=False):
        for name in [*folders, *files]:
            path = Path(parent) / name
            st = path.lstat()
            if stat.S_ISDIR(st.st_mode):
                os.chown(path, uid, gid, follow_symlinks=False)
                path.chmod(0o755)
            elif stat.S_ISREG(st.st_mode):
                os.chown(path, uid, gid, follow_symlinks=False)
                path.chmod(0o644)
            else:
                path.unlink()
    os.chown(out, uid, gid, follow_symlinks=False)
    out.chmod(0o755)


def _publish(root: Path, key: str, out: Path, program: str) -> None:
    """Put the build in place, then remove what older versions of the program left."""
    final, old = root / f"pycache-{key}", root / f".old-{key}"
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    out.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    for stamp in root.glob("renderer-*.json"):
        other = stamp.stem.removeprefix("renderer-")
        with contextlib.suppress(OSError, ValueError, AttributeError):
            if other != key and json.loads(stamp.read_text()).get("program") == program:
                shutil.rmtree(root / f"pycache-{other}", ignore_errors=True)
                _counter(root, other).unlink(missing_ok=True)
                stamp.unlink()


def main(args: list[str]) -> int:
    """``python -m renderhub.agent --bytecode FOLDER PROGRAM SANDBOX-JSON``."""
    folder, program, how = args
    os.umask(0o077)  # the stamps and staging folders are the worker's alone
    with contextlib.suppress(KeyboardInterrupt):
        record = build(folder, program, json.loads(how))
        print(json.dumps(record))
        return 0 if record.get("state") == "ready" else 1
    return 1
