"""miniwdl container backend ``renderhub_host``: each WDL task runs as a sandboxed process.

miniwdl only ships container backends and no container runtime runs here. This backend
keeps what miniwdl's own subprocess backends do (cpu/memory admission through miniwdl's
scheduler, stdout.txt/stderr.txt, retries, the command file) and replaces ``podman run``
with a process in RenderHub's bubblewrap sandbox (``renderhub.agent.sandbox``):

* the "container" directory *is* the call's host directory, so the paths miniwdl writes
  into commands (``<call dir>/work/_miniwdl_inputs/0/ref.fa``) are real paths, and each
  input is symlinked there (or copied, with ``[file_io] copy_input_files``);
* in the sandbox the call directory and the inputs are read-only, ``work/`` is the only
  writable folder, ``/tmp`` is a scratch folder of the call; no network, no environment
  but the sandbox's and the task's own ``env``, an unprivileged uid, resource limits;
  nothing else of the worker exists in there (its ``var/``, other projects, secrets);
* the command runs in its own session; on abort the whole process group gets SIGTERM,
  then SIGKILL, and what a finished command left running in its group is killed too;
* ``runtime.docker`` is ignored: tools come from the host's ``/usr``;
* ``runtime.memory`` is enforced as a limit of each process's address space (``prlimit``,
  twice the declared size plus 64 MiB: address space is more than memory in use).

The sandbox's settings come from the ``[renderhub]`` section of the configuration
(written by ``workflows.engines.miniwdl_files``); without it, the strictest sandbox.

RenderHub registers it through the ``renderhub_miniwdl_host-1.0.dist-info`` folder next to
this file (its ``entry_points.txt``), which ``miniwdl run`` finds because this folder is on
its PYTHONPATH; no package has to be installed. The module must not import Django: it
imports only the standard-library ``renderhub.agent.sandbox`` of the RenderHub tree that
holds this folder.

``python -m renderhub_miniwdl_host run …`` is miniwdl's own CLI, started so that it gets
SIGTERM (and so stops its tasks) if the worker that launched it dies.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import psutil
from WDL._util import StructuredLogMessage as _
from WDL._util import chmod_R_plus, path_really_within
from WDL.runtime import config
from WDL.runtime.backend.cli_subprocess import _SubprocessScheduler
from WDL.runtime.error import Terminated
from WDL.runtime.task_container import TaskContainer

# This folder sits in RenderHub's tree (workflows/engines/miniwdl_plugin): its root holds
# the sandbox module, which needs nothing but the standard library.
RENDERHUB_ROOT = Path(__file__).resolve().parents[3]
if str(RENDERHUB_ROOT) not in sys.path:
    sys.path.append(str(RENDERHUB_ROOT))

from renderhub.agent.sandbox import Limits, Sandbox, SandboxError, popen  # noqa: E402

KILL_GRACE_SECONDS = 5.0
POLL_SECONDS = 0.25
SECTION = "renderhub"
SCRATCH = "sandbox-tmp"  # the call's /tmp, below the call folder, removed after each attempt
EXIT_EVENT = "renderhub exit"  # read back by workflows.engines.miniwdl_calls
# runtime.memory as an address-space limit: twice the declared size, plus a base.
MEMORY_HEADROOM = 2
MEMORY_BASE = 64 << 20


class HostProcess(TaskContainer):
    _resource_limits: ClassVar[dict[str, int] | None] = None
    _limits_lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def global_init(cls, cfg: config.Loader, logger: logging.Logger) -> None:
        kind = cfg.get(SECTION, "sandbox", "bwrap")
        logger.notice(  # type: ignore[attr-defined]
            _(
                "renderhub_host backend: tasks run as host processes, runtime.docker is ignored",
                sandbox=kind,
                network=cfg.get_bool(SECTION, "network", False),
            )
        )

    @classmethod
    def detect_resource_limits(cls, cfg: config.Loader, logger: logging.Logger) -> dict[str, int]:
        # Tasks start on several threads at once; the scheduler's books must be set up once.
        with cls._limits_lock:
            if not cls._resource_limits:
                limits = {
                    "cpu": multiprocessing.cpu_count(),
                    "mem_bytes": psutil.virtual_memory().total,
                }
                _SubprocessScheduler.global_init(limits)
                cls._resource_limits = limits
        return cls._resource_limits

    def __init__(self, cfg: config.Loader, run_id: str, host_dir: str) -> None:
        super().__init__(cfg, run_id, host_dir)
        # No container: what miniwdl calls the in-container path is the host path.
        self.container_dir = host_dir

    def host_work_dir(self) -> str:
        # One work/ for every attempt (reset() moves a failed one aside): commands are
        # evaluated once, so their input paths under work/ must stay valid on a retry.
        return str(Path(self.host_dir) / "work")

    def reset(self, logger: logging.Logger) -> None:
        work = Path(self.host_work_dir())
        work.rename(work.with_name(f"work.attempt{self.try_counter}"))
        self.try_counter += 1
        work.mkdir()

    def _link_inputs(self) -> None:
        """Stand-in for bind mounts: each input appears at the path the command uses.

        The link goes to the input's real path, which the sandbox binds: an upstream call's
        output is named by a link in its out/ folder, which the sandbox does not have.
        """
        for host_path, container_path in self.input_path_map.items():
            link = Path(container_path.rstrip("/"))
            if link.is_symlink() or link.exists():  # copied by copy_input_files
                continue
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(os.path.realpath(host_path.rstrip("/")))

    def _run(self, logger: logging.Logger, terminating: Callable[[], bool], command: str) -> int:
        cpu = self.runtime_values.get("cpu", 0)
        memory = self.runtime_values.get("memory_reservation", 0)
        self.detect_resource_limits(self.cfg, logger)
        with contextlib.ExitStack() as cleanup:
            # Admission: wait until the task's cpu and memory fit next to the running ones.
            scheduler = _SubprocessScheduler(cpu, memory)
            cleanup.enter_context(scheduler)
            logger.info(_("provisioned", seconds_waited=scheduler.delay, cpu=cpu, mem_bytes=memory))
            self._link_inputs()
            command_file = str(Path(self.host_dir) / "command")
            with open(command_file, "w") as out:
                for key, value in self.runtime_values.get("env", {}).items():
                    out.write(f"export {key}={shlex.quote(str(value))}\n")
                out.write(command)
            shell = shlex.split(self.cfg.get("task_runtime", "command_shell"))
            sandbox = self._sandbox()
            cleanup.callback(shutil.rmtree, sandbox.scratch, ignore_errors=True)
            stdout = cleanup.enter_context(open(self.host_stdout_txt(), "ab"))
            stderr = cleanup.enter_context(open(self.host_stderr_txt(), "ab"))
            poll_stderr = cleanup.enter_context(self.poll_stderr_context(logger))
            proc = popen(
                [*shell, command_file],
                sandbox,
                cwd=self.host_work_dir(),
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,  # its own process group, killed as a whole
            )
            logger.notice(_("host process", pid=proc.pid))  # type: ignore[attr-defined]
            cleanup.enter_context(self.task_running_context())
            try:
                exit_code = self._wait(proc, terminating, poll_stderr)
            finally:
                _kill_group(proc)
            if terminating():
                raise Terminated()
        # For RenderHub's calls table and messages: each attempt's real exit status, and the
        # codes the task accepts when it says (miniwdl logs neither where RenderHub reads).
        codes = self.runtime_values.get("returnCodes")
        extra = {} if codes is None else {"return_codes": codes}
        logger.notice(  # type: ignore[attr-defined]
            _(EXIT_EVENT, exit_status=exit_code, attempt=self.try_counter, **extra)
        )
        return exit_code

    def _sandbox(self) -> Sandbox:
        """The task's sandbox: its call folder read-only, its inputs read-only, work/ writable."""
        cfg = self.cfg
        # miniwdl passes only declared inputs and call outputs (allow_any_input = false);
        # RenderHub names where those may be, as a second lock (run outside it: no roots).
        roots = [os.path.realpath(p) for p in cfg.get_list(SECTION, "input_roots", [])]
        workflows = cfg.get(SECTION, "workflow_dir", "")
        inputs = []
        for host_path in self.input_path_map:
            real = os.path.realpath(host_path.rstrip("/"))
            if roots and not any(path_really_within(real, root) for root in roots):
                raise SandboxError(f"the task input {host_path} is not one of this run's files")
            if workflows and path_really_within(real, workflows):
                # miniwdl writes write_lines() files 0660 on the host; a worker running as
                # root runs the task as uid 65534, which reads what others may read.
                chmod_R_plus(real, file_bits=0o004, dir_bits=0o005)
            inputs.append(real)
        call_dir = Path(self.host_dir)  # the command file in it, for the same reason
        call_dir.chmod(call_dir.stat().st_mode & 0o7777 | 0o005)
        chmod_R_plus(str(call_dir / "command"), file_bits=0o004)
        extra = [p for p in cfg.get_list(SECTION, "read_only", []) if Path(p).exists()]
        scratch = Path(self.host_dir) / SCRATCH
        scratch.mkdir(exist_ok=True)
        env = {"MINIWDL_CPU": str(cpu)} if (cpu := self.runtime_values.get("cpu")) else {}
        return Sandbox(
            kind=cfg.get(SECTION, "sandbox", "bwrap"),  # no section: the strictest
            network=cfg.get_bool(SECTION, "network", False),
            read_only=(self.host_dir, *inputs, *extra),
            writable=(self.host_work_dir(),),
            scratch=str(scratch),
            env=env,
            limits=Limits(
                file_size=cfg.get_int(SECTION, "max_file_size", 0),
                processes=cfg.get_int(SECTION, "max_processes", 0),
                memory=self._memory_limit(cfg.get_int(SECTION, "max_memory", 0)),
            ),
            gpu=bool(self.runtime_values.get("gpu")),
        )

    def _memory_limit(self, worker_limit: int) -> int:
        """The task's ``memory`` enforced: its processes' address space, with headroom
        (address space counts mapped libraries and thread stacks that are not memory in
        use), never above RENDER_MAX_MEMORY; 0 (none) when neither says."""
        declared = int(self.runtime_values.get("memory_reservation", 0) or 0)
        task_limit = declared * MEMORY_HEADROOM + MEMORY_BASE if declared else 0
        limits = [limit for limit in (task_limit, worker_limit) if limit > 0]
        return min(limits) if limits else 0

    def _wait(
        self, proc: subprocess.Popen[bytes], terminating: Callable[[], bool], poll: Any
    ) -> int:
        deadline: float | None = None
        while True:
            try:
                return proc.wait(POLL_SECONDS)
            except subprocess.TimeoutExpired:
                pass
            poll()
            if terminating():
                if deadline is None:
                    deadline = time.monotonic() + KILL_GRACE_SECONDS
                    _signal_group(proc, signal.SIGTERM)
                elif time.monotonic() > deadline:
                    _signal_group(proc, signal.SIGKILL)


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Leave nothing behind: what the command started in its group dies with it."""
    _signal_group(proc, signal.SIGKILL)
    if proc.poll() is None:
        proc.wait()


PR_SET_PDEATHSIG = 1  # linux/prctl.h
PARENT_ENV = "RENDERHUB_MINIWDL_PARENT"


def _die_with_parent() -> None:
    """Have the kernel send SIGTERM when the launching worker dies (Linux only)."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    expected = os.environ.get(PARENT_ENV)
    if expected and os.getppid() != int(expected):  # it died before prctl took effect
        sys.exit(143)


HTTPS_DIR = "_https"  # URL imports, fetched at submission (workflows.imports)


def _local_url_imports(make_read_source: Callable[..., Any]) -> Callable[..., Any]:
    """miniwdl's import reader, with ``https://`` imports read from the run's ``_https/``
    folder next to the main WDL: RenderHub fetched them when the run was submitted, and a
    worker never goes to the network for a WDL."""
    from urllib.parse import urlsplit

    from WDL.Tree import ReadSourceResult

    def make(no_outside_imports: bool) -> Callable[..., Any]:
        read_source = make_read_source(no_outside_imports)
        top: list[Path] = []

        async def read(uri: str, path: list[str], importer: Any) -> Any:
            if uri.startswith(("http://", "https://")):
                parts = urlsplit(uri)
                name = os.path.normpath("/" + parts.path).lstrip("/")
                local = top[0] / HTTPS_DIR / parts.netloc / name if top else None
                if local is None or not local.is_file():
                    raise FileNotFoundError(f"{uri} was not fetched when the run was submitted")
                return ReadSourceResult(local.read_text(), str(local))
            answer = await read_source(uri, path, importer)
            if not top:  # the main WDL comes first
                top.append(Path(answer.abspath).parent)
            return answer

        return read

    return make


def main(argv: list[str] | None = None) -> None:
    _die_with_parent()  # before miniwdl starts any thread
    import importlib

    from WDL import CLI

    CLI.make_read_source = _local_url_imports(CLI.make_read_source)
    # Next to this module, in the same folder on PYTHONPATH.
    importlib.import_module("renderhub_miniwdl_cache").install()
    CLI.main(argv)


if __name__ == "__main__":
    main()
