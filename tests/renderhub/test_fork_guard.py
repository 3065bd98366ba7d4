"""A worker's pool forks while a reporting thread works: the child must not inherit a lock
that thread holds (the heartbeat once held an import's lock, and a render worker's first
chunk hung for good)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

from renderhub.node.fork_guard import ForkGuard


def _fork_during_a_round(round_of: Callable[[], AbstractContextManager[object]]) -> int:
    """Fork while another thread is in a round holding a lock; the child's exit code: 0 if
    it could take that lock, 1 if the lock came to it held by a thread it does not have."""
    held = threading.Lock()  # stands for a module's import lock, a connection's lock
    inside, leave = threading.Event(), threading.Event()

    def work() -> None:
        with round_of(), held:
            inside.set()
            leave.wait(0.5)  # the round lasts half a second unless the fork lets it end

    thread = threading.Thread(target=work)
    thread.start()
    assert inside.wait(5)
    pid = os.fork()
    if pid == 0:  # the child: only this thread
        os._exit(0 if held.acquire(timeout=2) else 1)
    leave.set()
    thread.join()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_without_a_guard_the_child_inherits_a_held_lock() -> None:
    assert _fork_during_a_round(nullcontext) == 1


def test_a_fork_waits_for_the_round_in_progress() -> None:
    guard = ForkGuard(wait=10)
    assert _fork_during_a_round(guard.round) == 0


def test_a_round_stuck_for_longer_than_the_wait_does_not_stop_the_fork() -> None:
    guard = ForkGuard(wait=0.1)
    # The fork goes ahead after 0.1 s, into the half-second round: the pool can still replace
    # a child while a round waits on a dead database.
    assert _fork_during_a_round(guard.round) == 1
