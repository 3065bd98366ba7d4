"""``python -m renderhub.agent --session``: many chunks of one job, one renderer.

The manager writes one spec path per line on standard input and reads the events of
each chunk, which end with its ``finished``, from standard output as for a single chunk.
The driven renderer (:mod:`.warm`) is kept from one chunk to the next while their
command and sandbox are the same; it is closed when the input closes. Each chunk runs in
a thread of its own: the thread lowers itself to idle priority after its renderer
started, and this thread, which starts the next chunk's thread, never does.
"""

from __future__ import annotations

import contextlib
import fcntl
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from .events import EXIT_BAD_SPEC, EXIT_ERROR, CancelFlag, Cancelled, Emitter
from .runner import run
from .spec import SpecError, load_spec
from .warm import WarmSlot

LOCK = "session.lock"  # in the working directory: the session's own folder


def serve(lines: IO[str], out: IO[str], cancel: CancelFlag) -> int:
    slot = WarmSlot()
    busy = threading.Event()
    closing = threading.Event()
    raised: list[int] = []

    def stop(signum: int, _frame: object) -> None:
        cancel.request(f"cancelled by {signal.Signals(signum).name}")
        # Between chunks there is nothing to report: just go, once. A second signal must
        # not cut the renderer's closing short (it would outlive us).
        if not busy.is_set() and not closing.is_set() and not raised:
            raised.append(signum)
            raise Cancelled

    with held(Path(LOCK)):
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, stop)
            signal.signal(signal.SIGINT, stop)
        try:
            while not cancel.requested and (line := lines.readline()):
                if not (path := line.strip()):
                    continue
                busy.set()
                try:
                    chunk(path, out, cancel, slot)
                finally:
                    busy.clear()
        except Cancelled:
            pass
        finally:
            closing.set()
            slot.shutdown()
    return 0


@contextlib.contextmanager
def held(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (in the session's folder, the agent's working
    directory) while the session lives: a folder whose lock is free belongs to no running
    session, and may be pruned (``renderhub.node.agent_session.prune_sessions``)."""
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def chunk(path: str, out: IO[str], cancel: CancelFlag, slot: WarmSlot) -> int:
    """One chunk, in its own thread; its exit code (its ``finished`` event is sent)."""
    try:
        spec = load_spec(path)
    except SpecError as exc:
        Emitter(out).emit(
            "finished",
            status="bad_spec",
            exit_code=EXIT_BAD_SPEC,
            reason="; ".join(exc.problems),
            renderer_exit_code=None,
        )
        return EXIT_BAD_SPEC
    codes: list[int] = []

    def target() -> None:
        codes.append(run(spec, out, cancel, idle_after_start=True, slot=slot))

    thread = threading.Thread(target=target, name=f"chunk {spec.task}")
    thread.start()
    thread.join()
    return codes[0] if codes else EXIT_ERROR
