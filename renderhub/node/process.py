"""The agent's process on a render machine: its environment, its CPU use, its logs' tails,
and stopping it with the renderer (shared by the node and the manager's own worker)."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

KILL_GRACE_SECONDS = 5
TAIL_BYTES = 4000
# What the agent inherits: enough to run Python, nothing secret.
AGENT_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ")
ROOT = Path(__file__).resolve().parents[2]  # where ``renderhub.agent`` is importable from


def agent_environment() -> dict[str, str]:
    """The agent's whole environment: no database URL, storage, cloud or Django key."""
    env = {name: os.environ[name] for name in AGENT_ENV if name in os.environ}
    return {**env, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


def start_agent(spec_path: Path, work_dir: Path) -> subprocess.Popen[bytes]:
    """``python -m renderhub.agent SPEC`` in its own session (a cancel kills the agent and
    the renderer together), its events on stdout, its own errors in ``agent.stderr``."""
    with open(work_dir / "agent.stderr", "wb") as agent_stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "renderhub.agent", str(spec_path)],
            stdout=subprocess.PIPE,
            stderr=agent_stderr,
            stdin=subprocess.DEVNULL,
            cwd=work_dir,
            env=agent_environment(),
            start_new_session=True,
        )


def read_events(stream: IO[bytes], events: queue.Queue[dict[str, Any] | None]) -> None:
    """The agent's JSON-line events into ``events`` as they come (a line that is not one
    becomes a log event), then None once the agent closed its output."""
    for raw in stream:
        try:
            event = json.loads(raw)
        except ValueError:
            event = {"event": "log", "level": "info", "message": raw.decode(errors="replace")}
        if isinstance(event, dict):
            events.put(event)
    events.put(None)


def read_tail(path: Path, size: int = TAIL_BYTES) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, path.stat().st_size - size))
            return fh.read().decode(errors="replace")
    except OSError:
        return ""


def kill_group(process: subprocess.Popen[bytes] | None) -> None:
    """Stop the agent and the renderer: SIGTERM to the group, SIGKILL after a grace period."""
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(KILL_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


class CpuMeter:
    """CPU use of a process tree since the previous reading (the agent, bwrap, the renderer).

    psutil measures between two calls on the same Process object; a new object's first
    reading is always 0, so the objects are kept from one heartbeat to the next.
    """

    def __init__(self) -> None:
        self.procs: dict[int, Any] = {}

    def percent(self, pid: int) -> float | None:
        import psutil

        try:
            root = self.procs.get(pid) or psutil.Process(pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            return None
        known = {p.pid: self.procs.get(p.pid, p) for p in tree}
        total = 0.0
        for proc in known.values():
            with contextlib.suppress(psutil.Error):  # ended between the listing and the reading
                total += proc.cpu_percent(interval=None)
        self.procs = known
        return round(total, 1)
