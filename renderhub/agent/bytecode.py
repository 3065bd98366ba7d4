"""The renderer's own Python, compiled once per machine instead of at every start.

Blender's start-up runs much Python (the interface, the add-ons, Cycles' registration).
Python keeps compiled modules beside their sources, but a renderer cannot write there: in
the sandbox ``/usr`` is read-only, a worker that is not root may not write it either, and
Debian's package ships no bytecode. So every Blender compiled all of it again: on the
two-core machines measured a third of its start (0.87 s to start Blender, 0.55 s with
the bytecode ready), paid by every slot of every job.

So a machine keeps those modules compiled in a folder of its own (the spec's
``bytecode_dir``), and renderers see it read-only as their ``PYTHONPYCACHEPREFIX``:

* it is filled by :func:`build`, in a process of its own at idle priority, started by
  the first chunk that found it missing (that chunk and any before the build ends start
  as before): it starts the renderer with no scene and no user settings
  (``--factory-startup``) and compiles every module the renderer imported, then the rest
  of its own and the standard library's (not installed packages);
* nothing a scene does can change it: renderers see it read-only, it belongs to the
  worker's user and is written by it only, and Python checks each file against its
  source (time and size) before using it, so a module updated since is compiled as before;
* a stamp per renderer program (its path, size and time) says whether the build worked:
  a new program (an upgrade) builds again, a renderer whose Python ignores the
  environment is never given the folder, and a failed build is tried again after
  :data:`RETRY_AFTER`.

Standard library only, as the rest of the agent.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import idle, sandbox

PREFIX = "pycache"  # in the folder: the bytecode, by source path
LOCK = "build.lock"
ENV = "PYTHONPYCACHEPREFIX"
BUILD_TIMEOUT = 600.0  # seconds; at idle priority on a busy machine it may take long
RETRY_AFTER = 3600.0  # seconds before a failed build is tried again
# Runs inside the renderer: every module it imported at start-up, then every other one of
# its own and the standard library's (a scene may import more), compiled to where its
# Python looks: ``sys.pycache_prefix`` came from the environment, or the renderer does not
# honour it and nothing is written. Installed packages and the user's folders are left out.
BUILDER = """
import json, os, py_compile, re, sys

def each(paths):
    for folder in paths:
        if not os.path.isabs(folder) or folder.startswith(os.path.expanduser("~")):
            continue
        if re.search("(site|dist)-packages", folder):
            continue
        for parent, folders, files in os.walk(folder):
            folders[:] = [f for f in folders if f != "__pycache__"]
            yield from (os.path.join(parent, f) for f in files if f.endswith(".py"))

prefix, seen, counts = sys.pycache_prefix, set(), {"startup": 0, "more": 0, "failed": 0}
started = [getattr(m, "__file__", None) for m in list(sys.modules.values())]
for kind, sources in (("startup", started), ("more", each(list(sys.path)))):
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
print("RenderHub bytecode:", json.dumps({"prefix": prefix or "", **counts}), flush=True)
"""
MARK = "RenderHub bytecode: "


def program_key(executable: str) -> str:
    """Names the renderer program as it is now: another path, size or time is another."""
    real = Path(executable).resolve()
    st = real.stat()
    text = f"{real}\0{st.st_size}\0{st.st_mtime_ns}"
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _stamp(folder: Path, executable: str) -> Path:
    return folder / f"renderer-{program_key(executable)}.json"


def _private(folder: Path) -> bool:
    """The folder is a real one, ours, and nobody else may write in it."""
    try:
        st = folder.lstat()
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o022


def prefix_for(folder: str, executable: str) -> str | None:
    """The bytecode folder to give ``executable``, when the build for it succeeded and
    the folder is still as the build left it; None otherwise."""
    root = Path(folder)
    try:
        record = json.loads(_stamp(root, executable).read_text())
    except (OSError, ValueError):
        return None
    prefix = root / PREFIX
    if not (isinstance(record, dict) and record.get("ok")):
        return None
    if not (_private(root) and _private(prefix)):
        return None
    return str(prefix)


def wanted(folder: str, executable: str) -> bool:
    """Whether a build should start: no stamp yet (or its bytecode gone), or a failed one
    old enough to try again."""
    try:
        stamp = _stamp(Path(folder), executable)
        record = json.loads(stamp.read_text())
    except FileNotFoundError:
        return True
    except (OSError, ValueError):
        return False
    if not isinstance(record, dict) or record.get("unsupported"):
        return False
    if record.get("ok"):
        return not (Path(folder) / PREFIX).is_dir()
    return time.time() - float(record.get("at", 0)) > RETRY_AFTER


def trusted_program(executable: str) -> bool:
    """The program, and every folder above it, can be changed by root or us only: the
    build runs it outside any sandbox (with no scene and no user settings), so it must be
    one a project member cannot replace."""
    path = Path(executable).resolve()
    for part in (path, *path.parents):
        try:
            st = part.lstat()
        except OSError:
            return False
        # Folders such as /tmp may be open to all with the sticky bit: nobody else can
        # rename or remove what is ours in there.
        shared = stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX
        if st.st_uid not in (0, os.geteuid()) or (st.st_mode & 0o022 and not shared):
            return False
    return stat.S_ISREG(path.lstat().st_mode)


def for_render(
    folder: str | None, command: list[str], box: sandbox.Sandbox
) -> tuple[sandbox.Sandbox, str | None]:
    """``box`` with the renderer's bytecode folder (read-only, as its pycache prefix) when
    it is ready, else as it was; and a line for the chunk's log, if any.

    The program must be named in the software's template itself, not by a job's
    parameters, and be a trusted one; when its bytecode is missing the build starts
    in the background and this chunk goes on without it.

    Renderers never write bytecode themselves: beside the sources that would change the
    installed program (a worker that is root, with ``RENDER_SANDBOX=none``).
    """
    box = dataclasses.replace(box, env={**box.env, "PYTHONDONTWRITEBYTECODE": "1"})
    if not folder or not command or "{" in command[0]:
        return box, None
    try:
        program = sandbox.find_program(command[0], box)
    except sandbox.SandboxError:
        return box, None  # the chunk itself reports it
    if not trusted_program(program):
        return box, None
    if prefix := prefix_for(folder, program):
        env = {**box.env, ENV: prefix}
        box = dataclasses.replace(box, read_only=(*box.read_only, prefix), env=env)
        return box, f"the renderer's Python is precompiled in {prefix}"
    if wanted(folder, program) and start_build(folder, program) is not None:
        return box, f"compiling {program}'s Python in the background, for its next starts"
    return box, None


def start_build(folder: str, executable: str) -> subprocess.Popen[bytes] | None:
    """Build in the background (``python -m renderhub.agent --bytecode``), detached: the
    build outlives the chunk that asked for it. None when it could not start."""
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "renderhub.agent", "--bytecode", folder, executable],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError:
        return None


def build(folder: str, executable: str, timeout: float = BUILD_TIMEOUT) -> dict[str, object]:
    """Compile what ``executable`` imports at start-up into ``folder``; the stamp's record.

    One build at a time per folder (a lock; a second caller returns at once). Runs at
    idle priority: it must not slow the renders it was started beside.
    """
    idle.lower_this_thread()
    os.umask(0o022)  # the sandbox's user reads the bytecode (as root: the host's nobody)
    root = Path(folder)
    root.mkdir(mode=0o755, parents=True, exist_ok=True)
    if not _private(root):
        return {"ok": False, "reason": f"{root} is not a private folder of this user"}
    with open(root / LOCK, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return {"ok": False, "reason": "another build is under way"}
        if not wanted(folder, executable):
            return {"ok": True, "reason": "built already"}
        record = _compile(root, executable, timeout)
        _write_stamp(_stamp(root, executable), {**record, "at": time.time()})
        return record


def _compile(root: Path, executable: str, timeout: float) -> dict[str, object]:
    if not trusted_program(executable):
        return {"ok": False, "reason": f"{executable} could be changed by other users"}
    prefix = root / PREFIX
    prefix.mkdir(mode=0o755, exist_ok=True)
    if not _private(prefix):
        return {"ok": False, "reason": f"{prefix} is not a private folder of this user"}
    with tempfile.TemporaryDirectory(prefix="home-", dir=root) as home:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": home,  # no user's settings or add-ons
            "LANG": os.environ.get("LANG") or "C.UTF-8",
            ENV: str(prefix),
        }
        argv = [executable, "-b", "--factory-startup", "-noaudio", "--python-expr", BUILDER]
        try:
            done = subprocess.run(
                argv, cwd=home, env=env, capture_output=True, timeout=timeout, check=False
            )
        except (OSError, subprocess.SubprocessError) as exc:
            return {"ok": False, "reason": f"{executable} did not run: {exc}"}
    for line in done.stdout.decode(errors="replace").splitlines():
        if not line.startswith(MARK):
            continue
        found = json.loads(line[len(MARK) :])
        if not found["prefix"]:
            return {"ok": False, "unsupported": True, "reason": f"{executable} ignores {ENV}"}
        if found.get("startup_failed") or not found["startup"]:
            return {"ok": False, "reason": f"{executable}'s start-up modules did not compile"}
        counts = {k: int(found[k]) for k in ("startup", "more", "failed")}
        return {"ok": True, **counts, "reason": ""}
    tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
    return {"ok": False, "reason": f"{executable} exited {done.returncode}: {tail[0]}"}


def _write_stamp(path: Path, record: dict[str, object]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(record))
    tmp.replace(path)


def main(args: list[str]) -> int:
    """``python -m renderhub.agent --bytecode FOLDER EXECUTABLE``."""
    folder, executable = args
    with contextlib.suppress(KeyboardInterrupt):
        record = build(folder, executable)
        print(json.dumps(record))
        return 0 if record.get("ok") else 1
    return 1
