"""What the event drain does with a batch from the nodes: events, claims, node reports,
and the answers that go back (``jobs.event_drain`` calls :func:`handle`).

* chunk events are applied in one transaction (``events.apply_events``);
* ``node`` reports (a node's slots, CPU, memory, the clusters it serves) update its
  cluster node rows, as a worker with the database does itself (``heartbeat.report``),
  which also hands a free slot its next chunk;
* ``claim`` requests are answered one by one (``node_claims.answer_claim``);
* a genuine event about an attempt that no longer runs (cancelled, paused now, requeued,
  reaped) is answered with a ``stop`` on the queue the node named, so the node kills the
  renderer at its next heartbeat; a heartbeat of a running attempt that asks to ``renew``
  is answered with new write grants (``node_claims.renew_grants``).

Answers go only to queues named ``renderhub.node.<…>``: a node cannot make the drain
write into a render queue or the events queue.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from django.db import close_old_connections, connections

from clusters.choices import NodeState
from clusters.models import ClusterNode

from . import heartbeat, node_claims
from .events import Applied, apply_events

log = logging.getLogger(__name__)

REPLY_QUEUE = re.compile(r"renderhub\.node\.[A-Za-z0-9@._-]{1,200}\Z")
NODE_FACTS = {
    *("cpu_percent", "memory_percent", "cpu_count", "concurrency", "render_threads"),
    *("ip_address", "compiled_python"),
}
Reply = tuple[str, dict[str, Any]]


def handle(
    events: Iterable[Any],
    send: Callable[[str, dict[str, Any]], None] | None = None,
    claim_workers: ClaimWorkers | None = None,
) -> tuple[Applied, list[Reply]]:
    """Apply a batch; the answers made, each ``(queue, body)``, each also given to ``send``
    as soon as it is made. With ``claim_workers`` the claims are handed to them (answered
    beside the next batches, each on its own), else answered here one by one."""

    def answer(queue: str, body: dict[str, Any]) -> None:
        replies.append((queue, body))
        if send is not None:
            send(queue, body)

    claims: list[dict[str, Any]] = []
    reports: list[dict[str, Any]] = []
    rest: list[Any] = []
    for event in events:
        kind = event.get("kind") if isinstance(event, dict) else None
        (claims if kind == "claim" else reports if kind == "node" else rest).append(event)
    applied = apply_events(rest)
    replies: list[Reply] = []
    for reply_to, task, attempt in sorted(applied.stops):
        if REPLY_QUEUE.match(reply_to):
            answer(reply_to, {"kind": "stop", "task": task, "attempt": attempt,
                              "reason": "not yours any more"})  # fmt: skip
    for reply_to, task, attempt in sorted(applied.renewals):
        try:
            grants = (
                node_claims.renew_grants(task, attempt) if REPLY_QUEUE.match(reply_to) else None
            )
        except Exception:  # its output folder gone bad: the node's uploads will say so
            log.exception("could not renew the grants of chunk %s", task)
            continue
        if grants:
            answer(reply_to, grants)
    for report in reports:
        try:
            node_report(report)
        except Exception:  # one node's odd report never holds up the others
            log.exception("could not record the report of node %r", report.get("node"))
    for claim in claims:
        if not isinstance(claim.get("reply"), str) or not REPLY_QUEUE.match(claim["reply"]):
            log.warning("dropped a claim with no queue to answer on: %r", claim.get("reply"))
            continue
        claim["taken_at"] = time.time()  # the slot's wait is measured from here
        if claim_workers is not None:
            claim_workers.put(claim)
        else:
            answer(claim["reply"], _answered(claim))
    return applied, replies


def _answered(claim: dict[str, Any]) -> dict[str, Any]:
    try:
        return node_claims.answer_claim(claim)
    except Exception as exc:
        log.exception("could not answer the claim of chunk %r", claim.get("task"))
        return {"kind": "refused", "claim": claim.get("id"), "reason": f"manager: {exc}"}


class ClaimWorkers:
    """Threads answering claims beside the drain's loop, so a burst of claims (a job sent
    to a thousand idle nodes) neither holds up the events of the nodes already rendering
    nor waits for one claim after another. Each thread has its own database connection
    (closed when it stops) and its own way to answer (``make_send()``). A claim taken but
    not yet answered when the drain dies is lost like a message: its node gives the chunk
    up after its wait, and the manager sends the chunk again."""

    def __init__(self, threads: int, make_send: Callable[[], Callable[[str, Any], None]]) -> None:
        self.todo: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.make_send = make_send
        self.threads = [
            threading.Thread(target=self._run, daemon=True, name=f"claims-{i}")
            for i in range(max(1, threads))
        ]
        for thread in self.threads:
            thread.start()

    def put(self, claim: dict[str, Any]) -> None:
        self.todo.put(claim)

    def _run(self) -> None:
        send = self.make_send()
        try:
            while (claim := self.todo.get()) is not None:
                close_old_connections()
                send(claim["reply"], _answered(claim))
        finally:
            connections.close_all()
            if callable(closing := getattr(send, "close", None)):
                closing()

    def close(self) -> None:
        """Answer what was handed over, then stop."""
        for _ in self.threads:
            self.todo.put(None)
        for thread in self.threads:
            thread.join()


def node_report(report: dict[str, Any]) -> None:
    """A node's own heartbeat: its rows under the clusters it serves."""
    name, clusters = report.get("node"), report.get("clusters")
    if not isinstance(name, str) or not name or not isinstance(clusters, list):
        return
    facts = {key: report.get(key) for key in NODE_FACTS}
    facts["concurrency"] = max(1, int(facts.get("concurrency") or 1))
    threads = facts.get("render_threads")  # an older node says nothing: the manager's
    facts["render_threads"] = threads if type(threads) is int and 0 <= threads < 1 << 16 else None
    said, room = facts.get("compiled_python"), ClusterNode._meta.get_field("compiled_python")
    facts["compiled_python"] = said[: room.max_length] if isinstance(said, str) else ""
    state = NodeState.OFFLINE if report.get("state") == "offline" else None
    heartbeat.report(name[:255], [str(c) for c in clusters][:50], state, facts)
