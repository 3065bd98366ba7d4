"""Idle priority for the calling thread: checking, thumbnailing and uploading frames must
not take cores (or disk time) from the renders of the same machine.

On Linux a thread's nice value, scheduling policy and I/O priority are its own, and the
threads and processes it starts afterwards inherit them; so a thread lowers itself only
after it has started the renderer, or it is a thread of its own that starts nothing. None
of this can be undone without privileges: lower only threads that end with their work.
"""

from __future__ import annotations

import contextlib
import os
import platform
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

NICE = 19
IOPRIO_CLASS_IDLE = 3
IOPRIO_CLASS_SHIFT = 13
IOPRIO_WHO_PROCESS = 1  # with a thread id: that thread
# ioprio_set's system call number, per architecture (no libc wrapper exists).
SYS_IOPRIO_SET = {"x86_64": 251, "aarch64": 30, "i686": 289, "i386": 289}


def lower_this_thread(*, sched_idle: bool = True) -> list[str]:
    """Put the calling thread at nice 19, idle I/O class and (``sched_idle``) the SCHED_IDLE
    policy, each where the system has it; returns what was applied, for the log."""
    applied: list[str] = []
    tid = threading.get_native_id()
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, tid, NICE)
        applied.append(f"nice {NICE}")
    if sched_idle and hasattr(os, "SCHED_IDLE"):
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))  # 0: this thread
            applied.append("SCHED_IDLE")
    if _ioprio_idle(tid):
        applied.append("idle I/O")
    return applied


def _ioprio_idle(tid: int) -> bool:
    number = SYS_IOPRIO_SET.get(platform.machine())
    if number is None or platform.system() != "Linux":
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        value = IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT
        return int(libc.syscall(number, IOPRIO_WHO_PROCESS, tid, value)) == 0
    except (OSError, AttributeError):
        return False


# --- work that waits for a spare core --------------------------------------------------

TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
FORCED_BOUND = 6  # times its limit, on the clock, that work told to go on may take


def run_when_spare(
    proc: subprocess.Popen[bytes],
    limit: float,
    *,
    every: float = 0.5,
    still_here: Callable[[], object] = lambda: None,
    mark_every: float = 60.0,
    go_anyway: Callable[[], bool] = lambda: False,
) -> bool:
    """Let ``proc`` and its children run only while the rest of the machine leaves a core
    idle; True once it ended, False if it ran ``limit`` seconds (not counting its stops)
    without ending: killed then.

    Idle priority alone is not enough: measured here, a Blender at ``-a`` on both cores
    took a fifth longer (4 to 5 s of 23 s) beside a build at nice 19 and SCHED_IDLE, which
    runs whenever a render thread waits. So the process is stopped (SIGSTOP) from its
    start and whenever others use more than all cores but three quarters of one, and goes
    on after two readings below that. ``still_here`` is called every ``mark_every``
    seconds, stopped or not (its owner's mark that the work is alive). Once ``go_anyway``
    says so (asked at each reading) it stops waiting and runs at whatever priority it has:
    work worth doing must not wait for ever on a machine that is never idle. Its limit
    counts its own CPU time from then (beside renders on every core, an idle-priority
    process gets little), and ``FORCED_BOUND`` times the limit on the clock ends it too."""
    spare_below = max(0.25, (os.cpu_count() or 1) - 0.75)
    ran, forced, spare, ended = 0.0, 0.0, 0, False
    busy, mine, then = _machine_ticks(), _ticks_of(proc.pid), time.monotonic()
    marked, anyway = then, False
    stopped = _signal_tree(proc.pid, signal.SIGSTOP)  # from its start: the machine may be busy
    try:
        while True:
            try:
                proc.wait(every)
                ended = True
                return True
            except subprocess.TimeoutExpired:
                pass
            now = time.monotonic()
            now_busy, now_mine = _machine_ticks(), _ticks_of(proc.pid)
            own = max(0, now_mine - mine) / TICKS
            # Told to go on while no core is spare, at idle priority it may barely run: its
            # CPU time counts then, within a bound on the clock.
            if not stopped:
                ran += own if anyway else now - then
                forced += now - then if anyway else 0
            if ran > limit or forced > FORCED_BOUND * limit:
                return False
            if now - marked >= mark_every:
                marked = now
                with contextlib.suppress(OSError):  # a full disk must not end the wait
                    still_here()
            others = (now_busy - busy) / TICKS - own
            others /= max(now - then, 0.01)
            busy, mine, then = now_busy, now_mine, now
            anyway = anyway or go_anyway()
            spare = spare + 1 if others < spare_below or anyway else 0
            if spare < 2 and (stopped or not spare):  # again each time: a child forked late
                stopped = _signal_tree(proc.pid, signal.SIGSTOP)
            elif stopped:
                stopped = not _signal_tree(proc.pid, signal.SIGCONT)
    finally:
        if not ended:  # over its limit, or this wait failed: never left running unwatched
            _signal_tree(proc.pid, signal.SIGKILL)
        proc.wait()


def _machine_ticks() -> int:
    """Clock ticks all cores spent on this machine's work, since boot."""
    try:
        with open("/proc/stat") as stat:
            user, nice, system, _idle, _iowait, irq, softirq = map(
                int, stat.readline().split()[1:8]
            )
    except (OSError, ValueError):
        return 0
    return user + nice + system + irq + softirq  # not steal: the host's, not this machine's


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (those of bwrap: the renderer in its sandbox)."""
    found, todo = [], [pid]
    while todo:
        found.append(current := todo.pop())
        with contextlib.suppress(OSError, ValueError):
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(child) for child in (task / "children").read_text().split()]
    return found


def _ticks_of(pid: int) -> int:
    total = 0
    for each in _tree(pid):
        with contextlib.suppress(OSError, ValueError, IndexError):
            with open(f"/proc/{each}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total


def _signal_tree(pid: int, signum: int) -> bool:
    sent = False
    for each in _tree(pid):
        with contextlib.suppress(OSError):
            os.kill(each, signum)
            sent = True
    return sent
