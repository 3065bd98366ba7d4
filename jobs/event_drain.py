"""The manager's side of node events: drain ``renderhub.events`` and apply in batches.

``drain`` takes every message waiting (up to ``max_messages``, or what arrives within
``max_wait`` seconds), applies all their events in one transaction (``events.apply_events``)
and only then acknowledges the messages: a manager killed in between leaves them unacked,
and the broker delivers them again (Redis after its visibility timeout), where applying
twice changes nothing. A batch that fails is put back for the next round, never dropped.
One process and one database connection serve every node. A message that cannot be read
(not JSON, or half-written: kombu's filesystem broker writes a message in place, so on
the embedded defaults a message taken while being written is lost) is logged and dropped;
the drain goes on.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from django.db import close_old_connections, connections
from kombu import Connection

from renderhub.node_events import events_queue

from .events import Applied, apply_events

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _closing_database() -> Iterator[None]:
    """The drain's database connection is closed when it stops (it may run in a thread)."""
    try:
        yield
    finally:
        connections.close_all()


def drain(
    connection: Connection,
    stop: threading.Event,
    *,
    max_messages: int = 500,
    max_wait: float = 0.1,
    on_batch: Callable[[Applied, int], None] | None = None,
) -> None:
    """Apply node events until ``stop`` is set. ``on_batch(applied, messages)`` after each."""
    waiting: list[Any] = []

    def received(body: Any, message: Any) -> None:
        waiting.append((body, message))

    def undecodable(message: Any, exc: Exception) -> None:
        # Not JSON (a node may send anything): dropped, never the drain's end.
        log.error("dropped an event message that is not JSON: %s", exc)
        message.ack()

    with (
        connection.Consumer(
            [events_queue()],
            callbacks=[received],
            accept=["json"],
            prefetch_count=max_messages,
            on_decode_error=undecodable,
        ),
        _closing_database(),
    ):
        while not stop.is_set():
            deadline = time.monotonic() + max_wait
            while len(waiting) < max_messages and (left := deadline - time.monotonic()) > 0:
                try:
                    connection.drain_events(timeout=left)
                except TimeoutError:
                    break
                except Exception:  # a message the transport cannot read: keep draining
                    log.exception("could not take an event message")
                    break
            if not waiting:
                continue
            batch, waiting[:] = list(waiting), []
            events = [e for body, _ in batch if isinstance(body, list) for e in body]
            try:
                close_old_connections()
                applied = apply_events(events)
            except Exception:
                log.exception("could not apply %d events; they are put back", len(events))
                for _, message in batch:
                    message.requeue()
                stop.wait(1.0)
                continue
            for _, message in batch:
                message.ack()
            if on_batch is not None:
                on_batch(applied, len(batch))
