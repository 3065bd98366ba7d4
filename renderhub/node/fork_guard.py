"""Keep a reporting thread's rounds and the process's forks apart.

A Celery worker's main process forks its pool children while a reporting thread of ours
(the render worker's heartbeat, a node's reports) may be halfway through an import, a
database query or a broker publish. The child inherits the locks that thread held, but not
the thread, and hangs the first time it needs one of them: a render worker's first chunk
hung for good because the heartbeat was importing ``jobs.backends.celery`` (its module
lock held) at the moment the pool forked.

With a guard, a fork waits for the round in progress (at most ``wait`` seconds, so a round
stuck on a dead database cannot stop the pool from replacing a child) and a round waits
for a fork to finish.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class ForkGuard:
    def __init__(self, wait: float = 10.0) -> None:
        self.wait = wait
        # Reentrant: a round whose own thread forks (a subprocess with a preexec_fn) does not
        # wait for itself.
        self._lock = threading.RLock()
        self._held = threading.local()
        os.register_at_fork(
            before=self._before_fork,
            after_in_parent=self._after_fork_in_parent,
            after_in_child=self._after_fork_in_child,
        )

    @contextmanager
    def round(self) -> Iterator[None]:
        """One round of the thread's work, never cut in two by a fork."""
        with self._lock:
            yield

    def _before_fork(self) -> None:
        self._held.value = self._lock.acquire(timeout=self.wait)

    def _after_fork_in_parent(self) -> None:
        if getattr(self._held, "value", False):
            self._held.value = False
            self._lock.release()

    def _after_fork_in_child(self) -> None:
        # The copy is held by the forking thread, the child's only one; a fresh lock is
        # simpler than reasoning about who releases it.
        self._lock = threading.RLock()
        self._held = threading.local()


# One per process: a hook registered with os.register_at_fork stays for the process's life.
FORK_GUARD = ForkGuard()
