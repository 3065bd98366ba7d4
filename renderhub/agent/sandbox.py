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

import json
import os
import select
import shutil
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypedDict

if TYPE_CHECKING:
    from typing import Unpack  # Python 3.11: nodes may run the agent on 3.10

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
# Render nodes and CUDA compute devices only: not display nodes, MIG config or profilers.
GPU_DEVICES = ("/dev/dri/renderD*", "/dev/nvidia[0-9]*", "/dev/nvidiactl", "/dev/nvidia-uvm")
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
    shm: int = 256 << 20  # size of the sandbox's /dev/shm (a tmpfs: it is memory)


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
    entries = [Path("/etc") / n for n in ETC_ENTRIES + (NETWORK_ETC_ENTRIES if network else ())]
    entries = [p for p in entries if p.exists()]
    args = _folders(str(p) for p in entries)
    for path in entries:
        args += ["--ro-bind", str(path), str(path)]
    return args


def _gpu_binds() -> list[str]:
    devices = [str(d) for p in GPU_DEVICES for d in sorted(Path("/dev").glob(p[len("/dev/") :]))]
    args = _folders(d for d in devices if not d.startswith("/dev/nvidia"))
    for device in devices:
        args += ["--dev-bind", device, device]
    return args


def _folders(paths: Iterable[str]) -> list[str]:
    """``--dir`` for every folder above ``paths``, parents first, mode 0755.

    bwrap makes missing mount points itself, with the host's modes or (set up as root)
    0700: a sandbox user who cannot get through /etc, or through a 0700 parent of root's
    above the scene, could not reach what was bound for it.
    """
    found: set[str] = set()
    for path in paths:
        for parent in Path(path).parents:
            if str(parent) not in ("/", "/tmp", "/dev"):  # noqa: S108
                found.add(str(parent))
    args = []
    for folder in sorted(found, key=lambda p: (p.count("/"), p)):
        args += ["--perms", "0755", "--dir", folder]
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


@dataclass(frozen=True)
class _Launch:
    """Descriptors that go with a bwrap command line (see :func:`bwrap_argv`)."""

    files: Mapping[str, int] = field(default_factory=dict)  # path inside -> readable fd
    info_fd: int = -1  # as root: bwrap reports its child's pid here...
    block_fd: int = -1  # ...and waits on this until we wrote the child's id maps


def as_root() -> bool:
    return os.geteuid() == 0


def bwrap_argv(argv: list[str], sandbox: Sandbox, cwd: str, launch: _Launch) -> list[str]:
    """bwrap's argv running ``argv`` in ``sandbox`` with working directory ``cwd``.

    Two ways to the same confinement, by who runs it:

    * an ordinary user (the recommended render worker): bwrap maps the sandbox uid 65534
      to that user in a new user namespace;
    * root: a sandbox uid mapped to root would still be host root to the kernel (sysctls,
      setuid files, no process limit), so the child's namespace maps 0->0 only for bwrap's
      own set-up (root's folders stay bindable) and 65534->65534, and ``setpriv`` drops to
      65534 before the program starts: it runs as the host's nobody, with no capability.
    """
    bwrap = bwrap_path()
    if bwrap is None:
        raise SandboxError(problem("bwrap") or "bwrap is not usable")
    if not sandbox.scratch:
        raise SandboxError("a bwrap sandbox needs a scratch folder")
    read_only = _checked(sandbox.read_only, "read-only")
    writable = _checked(sandbox.writable, "writable")
    args = [bwrap, *_system_binds(), *_etc_binds(sandbox.network)]
    for path, fd in launch.files.items():
        args += ["--ro-bind-data", str(fd), path]
    # /proc shows the sandbox's processes only; its sysctls stay read-only whoever we are.
    args += ["--proc", "/proc", "--ro-bind", "/proc/sys", "/proc/sys", "--dev", "/dev"]
    shm = "/dev/shm"  # noqa: S108 (the sandbox's own, a tmpfs of bounded size)
    args += ["--perms", "01777", "--size", str(sandbox.limits.shm), "--tmpfs", shm]
    if sandbox.gpu:
        args += _gpu_binds()
    args += ["--bind", sandbox.scratch, "/tmp"]  # noqa: S108
    mounts = [("--ro-bind", *pair) for pair in read_only]
    mounts += [("--bind", *pair) for pair in writable]
    args += _folders(inside for _how, _source, inside in mounts)
    # Parents first: a writable folder inside a read-only one must be mounted after it.
    for how, source, inside in sorted(mounts, key=lambda m: m[2].count("/")):
        args += [how, source, inside]
    args += ["--remount-ro", "/"]  # the root holds only mount points: nothing to fill
    if launch.info_fd >= 0:
        args += ["--unshare-user", "--unshare-ipc", "--unshare-pid", "--unshare-uts"]
        args += ["--unshare-cgroup-try", *([] if sandbox.network else ["--unshare-net"])]
        args += ["--info-fd", str(launch.info_fd), "--userns-block-fd", str(launch.block_fd)]
        uid = str(SANDBOX_UID)
        argv = [_util("setpriv"), f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--", *argv]
    else:
        args += ["--unshare-all", "--unshare-user", *(["--share-net"] if sandbox.network else [])]
        args += ["--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--disable-userns"]
        args += ["--cap-drop", "ALL"]
    args += ["--die-with-parent", "--new-session", "--clearenv"]
    for name, value in environment(sandbox).items():
        args += ["--setenv", name, value]
    return [*args, "--chdir", cwd, "--", *argv]


def _util(name: str) -> str:
    """A util-linux or coreutils program, from the system's folders only."""
    path = shutil.which(name, path="/usr/bin:/bin")
    if path is None:
        raise SandboxError(f"{name} (util-linux) is not installed")
    return path


def _map_ids(info_fd: int, timeout: float = 30.0) -> int | None:
    """Read bwrap's child pid from ``info_fd`` and write its uid and gid maps; None when
    bwrap ended before telling (it failed: its stderr says why)."""
    data = b""
    deadline = time.monotonic() + timeout
    while b"}" not in data:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([info_fd], [], [], left)[0]:
            raise SandboxError("bwrap did not start its sandbox in time")
        chunk = os.read(info_fd, 4096)
        if not chunk:
            return None
        data += chunk
    pid = int(json.loads(data)["child-pid"])
    ids = f"0 0 1\n{SANDBOX_UID} {SANDBOX_UID} 1\n"
    for name in ("uid_map", "gid_map"):
        with open(f"/proc/{pid}/{name}", "w") as fh:
            fh.write(ids)
    # What bwrap's --disable-userns does (it cannot here): no user namespace inside ours,
    # so the program never gets capabilities over anything, not even a namespace of its own.
    limit = "/proc/sys/user/max_user_namespaces"
    nsenter, tee = _util("nsenter"), _util("tee")
    subprocess.run(
        [nsenter, f"--user=/proc/{pid}/ns/user", "--", tee, limit],
        input=b"0\n",
        stdout=subprocess.DEVNULL,
        check=True,
        timeout=timeout,
    )
    return pid


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
    args = [_util("prlimit"), "--core=0"]
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


class PopenOptions(TypedDict, total=False):
    """What callers of :func:`popen` may pass on to Popen."""

    stdin: int | IO[Any] | None
    stdout: int | IO[Any] | None
    stderr: int | IO[Any] | None
    start_new_session: bool


def popen(
    argv: list[str], sandbox: Sandbox, cwd: str, **kwargs: Unpack[PopenOptions]
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in ``sandbox`` (``kwargs`` go to Popen: stdio, start_new_session)."""
    if sandbox.kind not in KINDS:
        raise SandboxError(problem(sandbox.kind) or "bad sandbox")
    argv = [find_program(argv[0], sandbox), *argv[1:]]
    if sandbox.scratch:
        Path(sandbox.scratch).mkdir(parents=True, exist_ok=True)
    if sandbox.kind == "none":
        return subprocess.Popen(
            [*limit_argv(sandbox.limits), *argv], cwd=cwd, env=environment(sandbox), **kwargs
        )
    root = as_root()
    if root:  # the program runs as the host's 65534: give it its own folders
        for folder in (sandbox.scratch, *sandbox.writable):
            os.chown(folder, SANDBOX_UID, SANDBOX_UID)
    ours: list[int] = []  # descriptors this process keeps or closes
    theirs: list[int] = []  # descriptors bwrap inherits (closed here once it started)
    try:
        files = {}
        for path, data in _identity_files().items():
            read_end, write_end = os.pipe()
            os.write(write_end, data)  # a few bytes: fits the pipe buffer
            os.close(write_end)
            theirs.append(read_end)
            files[path] = read_end
        launch = _Launch(files=files)
        if root:
            info_r, info_w = os.pipe()
            block_r, block_w = os.pipe()
            ours += [info_r, block_w]
            theirs += [info_w, block_r]
            launch = _Launch(files=files, info_fd=info_w, block_fd=block_r)
        full = [*limit_argv(sandbox.limits), *bwrap_argv(argv, sandbox, cwd, launch)]
        proc = subprocess.Popen(full, env={"PATH": SANDBOX_PATH}, pass_fds=theirs, **kwargs)
        for fd in theirs:
            os.close(fd)
        theirs = []
        if root:
            info_read, block_write = ours
            try:
                _map_ids(info_read)
            except (OSError, ValueError, KeyError, SandboxError, subprocess.SubprocessError):
                proc.kill()
                raise
            finally:
                os.write(block_write, b"1")  # go on (or fail, if the maps are missing)
        return proc
    finally:
        for fd in ours + theirs:
            os.close(fd)
