"""A node slot's conversation with the manager: claims and their answers, and stops.

Each slot (one chunk at a time) has a control queue of its own,
``renderhub.node.<cluster>.<node>.<random>``. To take a chunk it was sent, the slot publishes a
``claim`` (the chunk, the ticket that came with its message, the node and its control
queue) to ``renderhub.events``; the manager's drain claims the chunk as a worker with a
database would (the same service: blocklist, pause, suspended cluster, adaptive sizing)
and answers on the control queue with the chunk's spec, links and grants, or with why not.
While a chunk runs, its heartbeats name the control queue too; a heartbeat about an
attempt that is no longer running (cancelled, paused now, requeued, reaped) is answered
with a ``stop``.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
import uuid
from typing import Any

from kombu import Connection, Consumer, Queue

from renderhub.node_events import EVENTS_QUEUE

log = logging.getLogger(__name__)


class NoAnswer(TimeoutError):
    """The manager did not answer a claim in time (its event drain is not running?)."""


class Control:
    def __init__(self, connection: Connection, node: str, cluster: str) -> None:
        self.connection = connection
        self.node = node
        # Below the cluster's name: a cluster's Redis user reads its own nodes' queues only.
        plain = re.sub(r"[^A-Za-z0-9@._-]", "_", node)[:100]
        self.queue = f"renderhub.node.{cluster}.{plain}.{uuid.uuid4().hex}"
        self.channel = connection.channel()
        self._queue = Queue(self.queue, channel=self.channel, no_declare=True)
        self._producer = connection.Producer(serializer="json")
        self.stops: list[dict[str, Any]] = []
        self.grants: list[dict[str, Any]] = []  # renewed write grants, newest last

    def send(self, message: dict[str, Any]) -> None:
        now = time.time()
        message.setdefault("at", now)
        message["sent"] = now
        try:
            self._publish(message)
        except Exception:
            with contextlib.suppress(Exception):
                self.reconnect()  # for the next message; this one's sender hears of it
            raise

    def _publish(self, message: dict[str, Any]) -> None:
        self._producer.publish(
            [message],
            exchange="",
            routing_key=EVENTS_QUEUE,
            delivery_mode=2,
            retry=True,
            retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5},
        )

    def claim(self, task: int, ticket: str, timeout: float) -> dict[str, Any]:
        """The manager's answer to this slot's claim of ``task``: ``{"kind": "chunk", …}``
        or ``{"kind": "refused", "reason": …}``; :class:`NoAnswer` after ``timeout``.

        The answer is waited for with a blocking read of the control queue (``BRPOP`` on
        Redis): a thousand nodes claiming at once cost the broker nothing while they wait.
        """
        ident = uuid.uuid4().hex
        found: list[dict[str, Any]] = []

        def received(body: Any, message: Any) -> None:
            found.extend(item for item in (body if isinstance(body, list) else [body]))

        try:
            return self._claim(task, ticket, timeout, ident, found, received)
        except NoAnswer:
            raise
        except Exception as exc:  # the broker away: the manager sends the chunk again
            with contextlib.suppress(Exception):
                self.reconnect()
            raise NoAnswer(f"the broker went away while claiming chunk {task}: {exc}") from None

    def _claim(
        self,
        task: int,
        ticket: str,
        timeout: float,
        ident: str,
        found: list[dict[str, Any]],
        received: Any,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with Consumer(self.channel, [self._queue], callbacks=[received], accept=["json"],
                      no_ack=True):  # fmt: skip
            self.send(
                {
                    "kind": "claim",
                    "id": ident,
                    "task": task,
                    "ticket": ticket,
                    "node": self.node,
                    "reply": self.queue,
                    "wait": timeout,  # after that this slot no longer listens
                }
            )
            while (left := deadline - time.monotonic()) > 0:
                try:
                    self.connection.drain_events(timeout=left)
                except TimeoutError:
                    break
                for answer in found:
                    if not isinstance(answer, dict):
                        continue
                    if answer.get("claim") == ident:
                        return answer
                    if answer.get("kind") == "stop":
                        self.stops.append(answer)
                found.clear()
        raise NoAnswer(f"the manager did not answer the claim of chunk {task} in {timeout:g} s")

    def reconnect(self) -> None:
        """A new connection after the broker went away (a restart): the queue's messages are
        in the broker, not in the old connection."""
        with contextlib.suppress(Exception):
            self.connection.release()
        self.connection = self.connection.clone()
        self.channel = self.connection.channel()
        self._queue = Queue(self.queue, channel=self.channel, no_declare=True)
        self._producer = self.connection.Producer(serializer="json")

    def take(self) -> list[dict[str, Any]]:
        """What waits on the control queue (stops are kept in ``stops`` as well); nothing
        while the broker cannot be reached (the next heartbeat looks again)."""
        try:
            return self._take()
        except Exception as exc:  # the broker away: kombu raises what its transport raises
            log.warning("control queue %s unreachable: %s", self.queue, exc)
            with contextlib.suppress(Exception):
                self.reconnect()
            return []

    def _take(self) -> list[dict[str, Any]]:
        found = []
        while (message := self._queue.get(no_ack=True, accept=["json"])) is not None:
            body = message.decode()
            for item in body if isinstance(body, list) else [body]:
                if isinstance(item, dict):
                    found.append(item)
                    if item.get("kind") == "stop":
                        self.stops.append(item)
                    elif item.get("kind") == "grants":
                        self.grants.append(item)
        return found

    def stopped(self, task: int, attempt: int) -> str:
        """Why the manager stopped this attempt ("" while it has not)."""
        self.take()
        for stop in self.stops:
            if stop.get("task") == task and stop.get("attempt") == attempt:
                return str(stop.get("reason") or "stopped by the manager")
        return ""

    def renewed(self, task: int, attempt: int) -> dict[str, Any] | None:
        """The newest write grants the manager sent for this attempt since the last call."""
        mine = [g for g in self.grants if g.get("task") == task and g.get("attempt") == attempt]
        self.grants = [g for g in self.grants if g not in mine]
        return mine[-1] if mine else None

    def close(self) -> None:
        self.connection.release()
