"""An agent kept between the chunks of one job on this worker process.

``python -m renderhub.agent --session`` keeps the job's Blender running from one chunk to
the next (:mod:`renderhub.agent.warm`), so a slot pays Blender's start-up once a job
rather than once a chunk. A slot that ends a chunk of a job with chunks still queued keeps
its session; the job's next chunk on this worker process takes it, a session of another
job kept later closes it, and it is closed when no chunk of its job came within
``seconds`` (a timer). Sessions hold no secret (the agent's environment is
:func:`.process.agent_environment`) and never pass from one job to another.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import queue
import shutil
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from renderhub.agent.session import LOCK

from .process import agent_environment, kill_group, read_events

log = logging.getLogger(__name__)

CLOSE_GRACE = 5.0  # seconds for a closed session to end its renderer and exit
PRUNE_AFTER = 3600.0  # a session folder no agent holds, untouched this long, is removed
OUTPUT_RECORD = "output_dir"  # in a session's folder: where its renderer wrote


class AgentSession:
    """One ``--session`` agent: spec paths in, every chunk's events out."""

    def __init__(self, key: str, directory: Path, output_dir: Path) -> None:
        self.key = key
        self.directory = directory  # the agent's: its stderr, the renderer's scratch
        self.output_dir = output_dir  # the renderer's: where it writes frames
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        (directory / OUTPUT_RECORD).write_text(str(output_dir))  # for prune_sessions
        self.stderr_path = directory / "agent.stderr"
        with open(self.stderr_path, "ab") as agent_stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "renderhub.agent", "--session"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=agent_stderr,
                cwd=directory,
                env=agent_environment(),
                start_new_session=True,  # a kill takes the agent and its renderer together
            )
        self.events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        reader = threading.Thread(
            target=read_events, args=(self.process.stdout, self.events), daemon=True
        )
        reader.start()

    def alive(self) -> bool:
        return self.process.poll() is None

    def submit(self, spec_path: Path) -> bool:
        """Give the agent a chunk; False if it no longer listens."""
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(f"{spec_path}\n".encode())
            self.process.stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            return False
        return True

    def kill(self) -> None:
        """Now: the agent, its renderer, their folder."""
        kill_group(self.process)
        shutil.rmtree(self.directory, ignore_errors=True)
        shutil.rmtree(self.output_dir, ignore_errors=True)

    def close(self) -> None:
        """End of input: the agent closes its renderer and exits; killed if it lingers.
        Waited for off the caller's thread: the next chunk need not wait for it."""
        if self.process.stdin is not None:
            with contextlib.suppress(OSError, ValueError):
                self.process.stdin.close()
        threading.Thread(target=self._reap, daemon=True, name=f"close {self.key}").start()

    def _reap(self) -> None:
        try:
            self.process.wait(CLOSE_GRACE)
        except subprocess.TimeoutExpired:
            log.warning("agent session %s did not end when closed: killed", self.key)
        self.kill()


class KeptSessions:
    """The sessions a worker process keeps between chunks: one per slot that ended a
    chunk of a job with more to come (a prefork child has one slot; a threads pool more)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.timers: dict[AgentSession, threading.Timer] = {}

    def take(self, key: str) -> AgentSession | None:
        """A kept session of ``key``'s that is alive, out of the keeper; None if none.
        Kept sessions of other jobs end before this returns: this slot has moved on to
        ``key``'s job, whose renderer must not load its scene beside theirs."""
        with self.lock:
            found = next((s for s in self.timers if s.key == key and s.alive()), None)
            others = [s for s in self.timers if s.key != key]
            for session in [found, *others] if found is not None else others:
                self.timers.pop(session).cancel()
        # Idle between chunks, nothing of theirs is lost; side by side, not one grace after
        # another (a threads pool keeps a session per slot).
        killers = [threading.Thread(target=other.kill) for other in others]
        for killer in killers:
            killer.start()
        for killer in killers:
            killer.join()
        return found

    def keep(self, session: AgentSession, seconds: float) -> None:
        """Keep ``session`` for the next chunk of its job, closed after ``seconds``.
        Sessions of other jobs go: their jobs have had their turn on this slot."""
        timer = threading.Timer(seconds, self._expire, args=(session,))
        timer.daemon = True
        with self.lock:
            others = [s for s in self.timers if s.key != session.key]
            for other in others:
                self.timers.pop(other).cancel()
            self.timers[session] = timer
            timer.start()
        for other in others:
            other.close()

    def close(self) -> None:
        with self.lock:
            sessions = list(self.timers)
            for timer in self.timers.values():
                timer.cancel()
            self.timers.clear()
        for session in sessions:
            session.close()

    def _expire(self, session: AgentSession) -> None:
        with self.lock:
            if self.timers.pop(session, None) is None:
                return  # taken meanwhile
        session.close()


kept = KeptSessions()


def prune_sessions(root: Path, older_than: float = PRUNE_AFTER) -> int:
    """Remove the folders (and output folders) of sessions under ``root``'s job folders
    that no agent holds any more, untouched for ``older_than`` seconds: a worker process
    that exited while keeping a session, or a close whose clean-up failed, leaves them.
    An agent holds its folder's lock as long as it runs (``renderhub.agent.session``).
    Returns how many went."""
    removed, now = 0, time.time()
    for folder in root.glob("job-*/session-*"):
        try:
            if now - folder.lstat().st_mtime < older_than or _held(folder):
                continue  # new (its agent may not have started yet), or in use
        except OSError:
            continue
        recorded = _read_small(folder / OUTPUT_RECORD)
        shutil.rmtree(folder, ignore_errors=True)
        # Only a folder of the session's own name: the record is never taken on trust.
        if recorded and (output := Path(recorded)).is_absolute() and output.name == folder.name:
            shutil.rmtree(output, ignore_errors=True)
        removed += not folder.exists()
    return removed


def _read_small(path: Path) -> str:
    """A regular file's text ('' for anything else: a FIFO would block the prune)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return ""
    with os.fdopen(fd, "rb") as record:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ""
        return record.read(4096).decode(errors="replace").strip()


def _held(folder: Path) -> bool:
    try:
        fd = os.open(folder / LOCK, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return False  # its agent never started
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return True  # not an agent's lock: left alone
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
