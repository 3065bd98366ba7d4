"""The manager's side of node events: drain ``renderhub.events`` and apply in batches.

``drain`` takes every message waiting (up to ``max_messages``, or what arrives within
``max_wait`` seconds), applies all their events in one transaction (``events.apply_events``)
and only then acknowledges the messages: a manager killed in between leaves them unacked,
and the broker delivers them again (Redis after its visibility timeout), where applying
twice changes nothing. A batch that fails is put back for the next round, never dropped.
One process and one database connection serve every node. A message that cannot be read
(not JSON) is logged and dropped; the drain goes on. (On the embedded defaults messages
appear whole: ``renderhub/fs_broker.py``.)

On Redis the drain takes its batch in one round trip (kombu's consumer makes one or more
per message, which capped a drain at a few hundred messages a second): a script moves up to
``max_messages`` of the oldest messages from the queue's list to the drain's own "taken"
list (one per drain ``name``), the drain applies them and then deletes that list. A drain
that dies in between finds its taken list when it starts again under the same name and
applies it first (applying twice changes nothing).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from django.db import InterfaceError, OperationalError, close_old_connections, connections
from kombu import Connection

from renderhub.node_events import EVENTS_QUEUE, REDIS_OPTIONS, events_queue

from .events import Applied
from .node_requests import ClaimWorkers, handle

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
    name: str = "default",
    claim_threads: int = 4,
) -> None:
    """Apply node events until ``stop`` is set. ``on_batch(applied, messages)`` after each.
    Drains running side by side on Redis need distinct ``name``s. Claims are answered by
    ``claim_threads`` threads beside the loop (``node_requests.ClaimWorkers``)."""
    claims = ClaimWorkers(claim_threads, lambda: Replier(connection.clone(), owned=True))
    try:
        if connection.transport.driver_type == "redis":
            _drain_redis(connection, stop, max_messages, on_batch, name, claims)
        else:
            _drain_kombu(connection, stop, max_messages, max_wait, on_batch, claims)
    finally:
        claims.close()


def _drain_kombu(
    connection: Connection,
    stop: threading.Event,
    max_messages: int,
    max_wait: float,
    on_batch: Callable[[Applied, int], None] | None,
    claims: ClaimWorkers,
) -> None:
    waiting: list[Any] = []
    replier = Replier(connection)

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
            messages = [body if isinstance(body, list) else [] for body, _ in batch]
            events = [e for body in messages for e in body]
            try:
                close_old_connections()
                applied = apply_messages(messages, replier, claims)
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


def apply_messages(messages: list[list[Any]], replier: Replier, claims: ClaimWorkers) -> Applied:
    """Apply a batch of messages' events. A batch that fails for its content (not for the
    database being away, which is tried again whole) is applied message by message, and a
    message that fails alone is dropped with an error in the log: one odd message never
    stops the drain for every other node."""
    try:
        return handle([e for body in messages for e in body], replier, claims)[0]
    except (OperationalError, InterfaceError):
        raise
    except Exception:
        if len(messages) == 1:
            log.exception("dropped a message whose %d events cannot be applied", len(messages[0]))
            return Applied(invalid=len(messages[0]))
        log.exception("a batch of %d messages failed; applying them one by one", len(messages))
    total = Applied()
    for body in messages:
        total.add(apply_messages([body], replier, claims))
    return total


class Replier:
    """Answers the nodes (claims, stops) on their queues. One that cannot be sent is
    logged: a node whose claim goes unanswered gives the chunk up (it is sent again), a
    stop is sent again at the next heartbeat."""

    def __init__(self, connection: Connection, *, owned: bool = False) -> None:
        self.connection = connection
        self.owned = owned  # released by close()
        self.producer = connection.Producer(serializer="json")

    def close(self) -> None:
        if self.owned:
            self.connection.release()

    def __call__(self, queue: str, body: dict[str, Any]) -> None:
        try:
            self.producer.publish(
                [body], exchange="", routing_key=queue, retry=True, retry_policy={"max_retries": 2}
            )
        except Exception:
            log.exception("could not answer on %s", queue)
            self._revive()

    def _revive(self) -> None:
        """A fresh connection for the next answer (after a broker restart the old one's
        channel is gone for good)."""
        try:
            fresh = self.connection.clone()
            self.producer = fresh.Producer(serializer="json")
        except Exception:  # still away: the next answer tries again
            return
        if self.owned:
            with contextlib.suppress(Exception):
                self.connection.release()
        self.connection, self.owned = fresh, True


# --- Redis: a batch per round trip ---------------------------------------------------------


def taken_keys(name: str = "default") -> tuple[str, str]:
    """The events queue's Redis list, and the list of the batch drain ``name`` applies."""
    queue = str(REDIS_OPTIONS["global_keyprefix"]) + EVENTS_QUEUE
    return queue, f"{queue}.taken.{name}"


# Moves up to ARGV[1] of the oldest messages (kombu pushes on the left, takes from the
# right) to the taken list KEYS[2], atomically, and returns them newest first.
TAKE = """
local items = redis.call('LRANGE', KEYS[1], -tonumber(ARGV[1]), -1)
if #items > 0 then
  redis.call('LTRIM', KEYS[1], 0, -#items - 1)
  for i = 1, #items, 1000 do
    redis.call('RPUSH', KEYS[2], unpack(items, i, math.min(i + 999, #items)))
  end
end
return items
"""


def _drain_redis(
    connection: Connection,
    stop: threading.Event,
    max_messages: int,
    on_batch: Callable[[Applied, int], None] | None,
    name: str,
    claims: ClaimWorkers,
) -> None:
    import redis

    queue, taken = taken_keys(name)
    client = redis.Redis.from_url(connection.as_uri(include_password=True))
    take = client.register_script(TAKE)
    replier = Replier(connection)
    with _closing_database(), contextlib.closing(client), _name_held(client, taken, name, stop):
        left_over: list[Any] | None = None  # first, what a drain of this name left taken
        while not stop.is_set():
            try:
                if left_over is None:
                    left_over = client.lrange(taken, 0, -1)
                batch = left_over or take(keys=[queue, taken], args=[max_messages])[::-1]
                if not batch:  # wait for the next message (a node's claim waits on it)
                    first = client.blmove(queue, taken, IDLE_BLOCK, "RIGHT", "RIGHT")
                    if first is not None:
                        batch = [first, *take(keys=[queue, taken], args=[max_messages])[::-1]]
            except redis.RedisError:
                log.exception("could not take event messages; trying again")
                stop.wait(1.0)
                continue
            if not batch:
                continue
            messages = [_events_of(raw) for raw in batch]
            events = [e for body in messages for e in body]
            try:
                close_old_connections()
                applied = apply_messages(messages, replier, claims)
            except Exception:
                log.exception("could not apply %d events; trying them again", len(events))
                left_over = batch
                stop.wait(1.0)
                continue
            left_over = []
            try:
                client.delete(taken)
            except redis.RedisError:  # applied: the next delete, or a restart, clears them
                log.exception("could not clear the applied batch")
            if on_batch is not None:
                on_batch(applied, len(batch))


NAME_LOCK_SECONDS = 30
# An empty queue is waited on (BLMOVE moves the next message to the taken list the moment
# it arrives) for at most this long, so a stop is seen within it.
IDLE_BLOCK = 1
# Renews the lock only while it is still this drain's.
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


class DrainNameTaken(RuntimeError):
    """Another drain runs under this name (their taken lists would be one)."""


@contextlib.contextmanager
def _name_held(client: Any, taken: str, name: str, stop: threading.Event) -> Iterator[None]:
    """Hold the drain's name while it runs: a second drain of the same name would apply and
    then delete the first one's batch. A drain that died holds it at most
    NAME_LOCK_SECONDS, which a new one waits out before it gives up."""
    lock, mine = f"{taken}.lock", uuid.uuid4().hex
    deadline = time.monotonic() + NAME_LOCK_SECONDS + 1
    while not client.set(lock, mine, nx=True, ex=NAME_LOCK_SECONDS):
        if time.monotonic() > deadline or stop.wait(0.5):
            raise DrainNameTaken(
                f"Another event drain named {name!r} is running: give this one its own --name."
            )
    renew, done = client.register_script(RENEW), threading.Event()

    def keep() -> None:
        while not done.wait(NAME_LOCK_SECONDS / 3):
            with contextlib.suppress(Exception):  # Redis away: renewed on a later try
                renew(keys=[lock], args=[mine, NAME_LOCK_SECONDS])

    keeper = threading.Thread(target=keep, daemon=True, name=f"drain-{name}-lock")
    keeper.start()
    try:
        yield
    finally:
        done.set()
        keeper.join()
        with contextlib.suppress(Exception):
            if client.get(lock) == mine.encode():
                client.delete(lock)


def _events_of(raw: bytes | str) -> list[Any]:
    """The events of one message as kombu's Redis transport stores it (its envelope, the
    body base64-encoded JSON); nothing, logged, for a message that is not that."""
    try:
        envelope = json.loads(raw)
        body = envelope["body"]
        if envelope.get("content-type") != "application/json":
            raise ValueError(f"content type {envelope.get('content-type')!r}")
        if envelope.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        events = json.loads(body)
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error, RecursionError) as exc:
        log.error("dropped an event message that is not JSON: %s", exc)
        return []
    return events if isinstance(events, list) else []
