"""Run untrusted programs (renderers, WDL task commands) inside a bubblewrap sandbox.

What a project member submits (a scene, parameters, a WDL command) runs with:

* new user, PID, IPC, UTS, cgroup and network namespaces (network only if allowed), an
  unprivileged uid, no capabilities, no way to make further user namespaces;
* the system (``/usr`` and a short list of ``/etc`` entries) read-only, plus the paths the
  caller names read-only (the staged scene, the task's inputs) and writable (the chunk's
  own output folder); a private scratch folder as ``/tmp`` and ``$HOME``;
* a cleared environment: ``PATH``, ``HOME``, ``TMPDIR``, ``LANG`` and the variables the
  caller declares, nothing of the worker's (database URL, storage or cloud keys);
* resource limits set by ``prlimit`` before bwrap starts (inherited inside): file size,
  processes, address space, no core files.

Paths keep their host names inside the sandbox, so argv templates, scene-relative paths
(``//textures/x.png``) and miniwdl's command paths work unchanged; everything not bound
simply does not exist in there (the worker's ``var/``, the secret key, other projects).

``kind="none"`` runs the program directly with the same cleared environment and limits:
no file system or network isolation (for machines without bubblewrap, or BatchCompute VMs
where the VM is the boundary). Standard library only: the agent ships to nodes bare.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

KINDS = ("bwrap", "none")
SANDBOX_UID = 65534  # nobody: owns nothing on the host's file systems
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
# /etc holds more than programs need, some of it private (ssl/private, credentials of
# services, the worker's .env if someone put it there): only what dynamic linking, fonts,
# time zones and TLS roots need.
ETC_ENTRIES = (
    "alternatives",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "fonts",
    "localtime",
    "timezone",
    "mime.types",
    "ssl/certs",
    "ca-certificates",
    "ca-certificates.conf",
)
NETWORK_ETC_ENTRIES = ("resolv.conf", "hosts", "nsswitch.conf", "host.conf", "gai.conf")
# Merged-/usr systems have these as symlinks into /usr; older ones as real folders.
TOP_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
PROBE_ARGS = ("--unshare-all", "--unshare-user", "--disable-userns", "--", "/bin/true")
GPU_DEVICES = ("/dev/dri", "/dev/nvidia*", "/dev/nvidiactl", "/dev/nvidia-uvm*")
PASSWD = "render:x:{uid}:{uid}:RenderHub sandbox:/tmp:/usr/sbin/nologin\n"  # noqa: S105
GROUP = "render:x:{uid}:\n"


class SandboxError(RuntimeError):
    """The sandbox cannot be set up as asked (no bwrap, a path that does not exist)."""


@dataclass(frozen=True)
class Limits:
    """Per-process limits; 0 means none. Files: bytes; memory: bytes of address space."""

    file_size: int = 0
    processes: int = 0
    memory: int = 0


@dataclass(frozen=True)
class Sandbox:
    kind: str = "bwrap"
    network: bool = False
    read_only: tuple[str, ...] = ()  # host paths visible read-only at the same path
    writable: tuple[str, ...] = ()  # host paths writable at the same path
    scratch: str = ""  # host folder mounted as /tmp (and $HOME); made if missing
    env: Mapping[str, str] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    gpu: bool = True  # bind GPU device nodes when the machine has them


def environment(sandbox: Sandbox) -> dict[str, str]:
    """The whole environment of the sandboxed program: nothing inherited but the locale."""
    home = "/tmp" if sandbox.kind == "bwrap" or not sandbox.scratch else sandbox.scratch  # noqa: S108
    env = {
        "PATH": SANDBOX_PATH,
        "HOME": home,
        "TMPDIR": home,
        "LANG": os.environ.get("LANG") or "C.UTF-8",
        "USER": "render",
        "LOGNAME": "render",
    }
    if tz := os.environ.get("TZ"):
        env["TZ"] = tz
    env.update(sandbox.env)
    return env


@cache
def bwrap_path() -> str | None:
    """bwrap's path when it is installed and can make a sandbox on this machine, else None."""
    path = shutil.which("bwrap")
    if path is None:
        return None
    try:
        probe = subprocess.run(
            [path, *_system_binds(), *PROBE_ARGS],
            capture_output=True,
            timeout=20,
            env={"PATH": SANDBOX_PATH},
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return path if probe.returncode == 0 else None


def problem(kind: str) -> str | None:
    """Why ``kind`` cannot be used here, or None when it can."""
    if kind not in KINDS:
        return f"unknown sandbox {kind!r}; use one of {', '.join(KINDS)}"
    if kind == "bwrap":
        if shutil.which("bwrap") is None:
            return "bubblewrap (bwrap) is not installed: apt-get install bubblewrap"
        if bwrap_path() is None:
            return "bwrap cannot create a sandbox here (user namespaces disabled?)"
    return None


def _system_binds() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for name in TOP_LINKS:
        top = Path("/") / name
        if top.is_symlink():
            args += ["--symlink", str(top.readlink()), str(top)]
        elif top.is_dir():
            args += ["--ro-bind", str(top), str(top)]
    return args


def _etc_binds(network: bool) -> list[str]:
    args = []
    for name in ETC_ENTRIES + (NETWORK_ETC_ENTRIES if network else ()):
        path = Path("/etc") / name
        if path.exists():
            args += ["--ro-bind", str(path), str(path)]
    return args


def _gpu_binds() -> list[str]:
    args = []
    for pattern in GPU_DEVICES:
        for device in sorted(Path("/dev").glob(pattern.removeprefix("/dev/"))):
            args += ["--dev-bind", str(device), str(device)]
    return args


def _checked(paths: Iterable[str], what: str) -> list[tuple[str, str]]:
    """(host source, path inside) pairs: the real folder, seen at the name the caller uses."""
    result = {}
    for path in paths:
        if not Path(path).is_absolute():
            raise SandboxError(f"{what} path {path!r} must be absolute")
        if not Path(path).exists():
            raise SandboxError(f"{what} path {path} does not exist")
        result[os.path.normpath(path)] = str(Path(path).resolve())
    return [(source, inside) for inside, source in result.items()]


def bwrap_argv(
    argv: list[str], sandbox: Sandbox, cwd: str, files: Mapping[str, int] | None = None
) -> list[str]:
    """bwrap's argv running ``argv`` in ``sandbox`` with working directory ``cwd``.

    ``files`` maps a path inside the sandbox to a readable file descriptor whose content
    becomes that (read-only) file; the caller passes those descriptors on (``pass_fds``).
    """
    bwrap = bwrap_path()
    if bwrap is None:
        raise SandboxError(problem("bwrap") or "bwrap is not usable")
    if not sandbox.scratch:
        raise SandboxError("a bwrap sandbox needs a scratch folder")
    read_only = _checked(sandbox.read_only, "read-only")
    writable = _checked(sandbox.writable, "writable")
    args = [bwrap, *_system_binds(), *_etc_binds(sandbox.network)]
    for path, fd in (files or {}).items():
        args += ["--ro-bind-data", str(fd), path]
    args += ["--dev", "/dev", "--proc", "/proc"]
    if sandbox.gpu:
        args += _gpu_binds()
    args += ["--bind", sandbox.scratch, "/tmp"]  # noqa: S108
    mounts = [("--ro-bind", *pair) for pair in read_only]
    mounts += [("--bind", *pair) for pair in writable]
    # Parents first: a writable folder inside a read-only one must be mounted after it.
    for how, source, inside in sorted(mounts, key=lambda m: m[2].count("/")):
        args += [how, source, inside]
    args += ["--unshare-all", "--unshare-user", *(["--share-net"] if sandbox.network else [])]
    args += ["--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--disable-userns"]
    args += ["--cap-drop", "ALL", "--die-with-parent", "--new-session", "--clearenv"]
    for name, value in environment(sandbox).items():
        args += ["--setenv", name, value]
    return [*args, "--chdir", cwd, "--", *argv]


def _identity_files() -> dict[str, bytes]:
    """/etc/passwd and /etc/group naming the sandbox user (some tools look themselves up)."""
    return {
        "/etc/passwd": PASSWD.format(uid=SANDBOX_UID).encode(),
        "/etc/group": GROUP.format(uid=SANDBOX_UID).encode(),
    }


def limit_argv(limits: Limits) -> list[str]:
    """``prlimit`` applying ``limits`` to the program it starts (bwrap passes them on).

    A program rather than a ``preexec_fn``: callers such as miniwdl start tasks from
    threads, where running Python between fork and exec can deadlock.
    """
    prlimit = shutil.which("prlimit", path="/usr/bin:/bin")
    if prlimit is None:
        raise SandboxError("prlimit (util-linux) is not installed")
    args = [prlimit, "--core=0"]
    for flag, value in (
        ("--fsize", limits.file_size),
        ("--nproc", limits.processes),
        ("--as", limits.memory),
    ):
        if value > 0:
            args.append(f"{flag}={value}")
    return [*args, "--"]


def find_program(name: str, sandbox: Sandbox) -> str:
    """The absolute path ``name`` runs as in the sandbox, looked up on the sandbox's PATH."""
    path = environment(sandbox)["PATH"]
    found = shutil.which(name, path=path)
    if found is None:
        where = "" if "/" in name else f" on PATH {path}"
        raise SandboxError(f"{name} is not an executable program{where}")
    return found


def popen(argv: list[str], sandbox: Sandbox, cwd: str, **kwargs: object) -> subprocess.Popen[bytes]:
    """Start ``argv`` in ``sandbox`` (``kwargs`` go to Popen: stdio, start_new_session)."""
    if sandbox.kind not in KINDS:
        raise SandboxError(problem(sandbox.kind) or "bad sandbox")
    argv = [find_program(argv[0], sandbox), *argv[1:]]
    if sandbox.scratch:
        Path(sandbox.scratch).mkdir(parents=True, exist_ok=True)
    if sandbox.kind == "none":
        return subprocess.Popen(  # type: ignore[call-overload,no-any-return]
            [*limit_argv(sandbox.limits), *argv], cwd=cwd, env=environment(sandbox), **kwargs
        )
    pipes = []
    files = {}
    try:
        for path, data in _identity_files().items():
            read_end, write_end = os.pipe()
            os.write(write_end, data)  # a few bytes: fits the pipe buffer
            os.close(write_end)
            pipes.append(read_end)
            files[path] = read_end
        full = [*limit_argv(sandbox.limits), *bwrap_argv(argv, sandbox, cwd, files)]
        return subprocess.Popen(  # type: ignore[call-overload,no-any-return]
            full, env={"PATH": SANDBOX_PATH}, pass_fds=pipes, **kwargs
        )
    finally:
        for fd in pipes:
            os.close(fd)
