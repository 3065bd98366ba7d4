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
import threading

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
