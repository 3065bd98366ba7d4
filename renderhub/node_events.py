"""A render node's reports, sent as broker messages: :class:`EventSender`.

The broker is the one service a node needs to reach. A node numbers the events of each
chunk attempt (``seq``), names each (``<node>:<task>:<attempt>:<seq>``) and stamps it with
the time it saw it; every ``flush_every`` seconds it publishes what it gathered as one
message (a JSON list) to the ``renderhub.events`` queue, which the manager drains in
batches (``jobs/event_drain.py``, ``manage.py node_events``). Only the latest ``progress``
and ``log`` of a chunk within one flush are kept: they replace each other anyway, and a
thousand nodes each sending every progress tick would be the broker's load, not news.

Messages are persistent and published with retries; what cannot be published stays
queued in the sender (bounded) and goes with the next flush. Standard library and kombu
(Celery's transport) only: no Django, no database.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from kombu import Connection, Exchange, Queue

from renderhub.fs_broker import TRANSPORT as FS_TRANSPORT

log = logging.getLogger(__name__)

EVENTS_QUEUE = "renderhub.events"
EVENTS_EXCHANGE = Exchange(EVENTS_QUEUE, type="direct", durable=True)
COALESCED = ("progress", "log")  # a later one replaces an earlier one of the same chunk
MAX_PENDING = 100_000  # events kept while the broker cannot be reached


# On Redis, events keep their own keys (their unacked messages among them), so the short
# time after which an unacked batch is delivered again never touches render messages,
# whose visibility timeout is hours.
REDIS_OPTIONS = {"global_keyprefix": "renderhub.events:", "visibility_timeout": 60}


def events_queue() -> Queue:
    return Queue(EVENTS_QUEUE, EVENTS_EXCHANGE, routing_key=EVENTS_QUEUE, durable=True)


def events_connection(url: str, transport_options: dict[str, Any] | None = None) -> Connection:
    """A connection for events to the broker at ``url`` (the filesystem broker keeps the
    folders its ``transport_options`` name)."""
    if url.startswith(("redis://", "rediss://")):
        return Connection(url, transport_options=dict(REDIS_OPTIONS))
    transport = FS_TRANSPORT if url.startswith("filesystem://") else None
    return Connection(url, transport=transport, transport_options=dict(transport_options or {}))


class EventSender:
    """Gathers a node's events and publishes them in batches on its own connection."""

    def __init__(
        self,
        connection: Connection,
        node: str,
        *,
        flush_every: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.connection = connection
        self.node = node
        self.flush_every = flush_every
        self.clock = clock
        self.sent = 0  # events published
        self._seq: dict[tuple[int, int], int] = {}
        self._tokens: dict[tuple[int, int], str] = {}
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._producer = connection.Producer(serializer="json")

    def authorize(self, task: int, attempt: int, token: str) -> None:
        """The token the manager issued with this chunk attempt; its events carry it (the
        manager drops events without it)."""
        with self._lock:
            self._tokens[(task, attempt)] = token

    def event(self, task: int, attempt: int, kind: str, **fields: Any) -> dict[str, Any]:
        """Queue one event of the chunk ``task`` (its attempt ``attempt``) for the next flush."""
        with self._lock:
            seq = self._seq[(task, attempt)] = self._seq.get((task, attempt), 0) + 1
            event = {
                "id": f"{self.node}:{task}:{attempt}:{seq}",
                "task": task,
                "attempt": attempt,
                "seq": seq,
                "token": self._tokens.get((task, attempt), ""),
                "kind": kind,
                "at": self.clock(),
                **fields,
            }
            if kind in COALESCED:
                self._pending = [
                    e
                    for e in self._pending
                    if not (e["kind"] == kind and e["task"] == task and e["attempt"] == attempt)
                ]
            self._pending.append(event)
            if len(self._pending) > MAX_PENDING:
                dropped = self._pending.pop(0)
                log.warning("event buffer full: dropped %s", dropped["id"])
        return event

    def flush(self) -> int:
        """Publish what is pending as one message; the number of events sent (0 on error,
        the events then wait for the next flush)."""
        with self._lock:
            batch, self._pending = self._pending, []
        if not batch:
            return 0
        sent = self.clock()
        for event in batch:  # when it left the node (``at`` is when the node saw it)
            event["sent"] = sent
        try:
            # Straight into the queue (the default exchange): no binding is looked up, which
            # on Redis halves a publish's round trips, and the message is kept even before
            # any drain declared the queue.
            self._producer.publish(
                batch,
                exchange="",
                routing_key=EVENTS_QUEUE,
                delivery_mode=2,
                retry=True,
                retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5},
            )
        except Exception as exc:  # the broker is away: keep them, in order, for next time
            log.warning("could not send %d events: %s", len(batch), exc)
            with self._lock:
                self._pending = batch + self._pending
            self._revive()
            return 0
        self.sent += len(batch)
        return len(batch)

    def _revive(self) -> None:
        """A fresh connection for the next flush: after a broker restart the old one's
        channel is gone for good (kombu's retry does not bring it back)."""
        try:
            fresh = self.connection.clone()
            self._producer = fresh.Producer(serializer="json")
        except Exception as exc:  # still away: the next flush tries again
            log.debug("broker still unreachable: %s", exc)
            return
        with contextlib.suppress(Exception):
            self.connection.release()
        self.connection = fresh

    def start(self) -> None:
        """Flush every ``flush_every`` seconds in a background thread until :meth:`close`."""
        self._thread = threading.Thread(target=self._loop, daemon=True, name="node-events")
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.flush_every):
            self.flush()

    def close(self) -> None:
        """Stop flushing, send what is left."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.flush()
