"""What the event drain does with a batch from the nodes: events, claims, node reports,
and the answers that go back (``jobs.event_drain`` calls :func:`handle`).

* chunk events are applied in one transaction (``events.apply_events``);
* ``node`` reports (a node's slots, CPU, memory, the clusters it serves) update its
  cluster node rows, as a worker with the database does itself (``heartbeat.report``),
  which also hands a free slot its next chunk;
* ``claim`` requests are answered one by one (``node_claims.answer_claim``);
* a genuine event about an attempt that no longer runs (cancelled, paused now, requeued,
  reaped) is answered with a ``stop`` on the queue the node named, so the node kills the
  renderer at its next heartbeat.

Answers go only to queues named ``renderhub.node.<…>``: a node cannot make the drain
write into a render queue or the events queue.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

from clusters.choices import NodeState

from . import heartbeat, node_claims
from .events import Applied, apply_events

log = logging.getLogger(__name__)

REPLY_QUEUE = re.compile(r"renderhub\.node\.[A-Za-z0-9@._-]{1,200}\Z")
NODE_FACTS = {"cpu_percent", "memory_percent", "cpu_count", "concurrency", "ip_address"}
Reply = tuple[str, dict[str, Any]]


def handle(events: Iterable[Any]) -> tuple[Applied, list[Reply]]:
    """Apply a batch; the answers to send, each ``(queue, body)``."""
    claims: list[dict[str, Any]] = []
    reports: list[dict[str, Any]] = []
    rest: list[Any] = []
    for event in events:
        kind = event.get("kind") if isinstance(event, dict) else None
        (claims if kind == "claim" else reports if kind == "node" else rest).append(event)
    applied = apply_events(rest)
    replies: list[Reply] = [
        (queue, {"kind": "stop", "task": task, "attempt": attempt, "reason": "not yours any more"})
        for queue, task, attempt in sorted(applied.stops)
        if REPLY_QUEUE.match(queue)
    ]
    for report in reports:
        try:
            node_report(report)
        except Exception:  # one node's odd report never holds up the others
            log.exception("could not record the report of node %r", report.get("node"))
    for claim in claims:
        if not isinstance(claim.get("reply"), str) or not REPLY_QUEUE.match(claim["reply"]):
            log.warning("dropped a claim with no queue to answer on: %r", claim.get("reply"))
            continue
        try:
            replies.append((claim["reply"], node_claims.answer_claim(claim)))
        except Exception as exc:
            log.exception("could not answer the claim of chunk %r", claim.get("task"))
            answer = {"kind": "refused", "claim": claim.get("id"), "reason": f"manager: {exc}"}
            replies.append((claim["reply"], answer))
    return applied, replies


def node_report(report: dict[str, Any]) -> None:
    """A node's own heartbeat: its rows under the clusters it serves."""
    name, clusters = report.get("node"), report.get("clusters")
    if not isinstance(name, str) or not name or not isinstance(clusters, list):
        return
    facts = {key: report.get(key) for key in NODE_FACTS}
    facts["concurrency"] = max(1, int(facts.get("concurrency") or 1))
    state = NodeState.OFFLINE if report.get("state") == "offline" else None
    heartbeat.report(name[:255], [str(c) for c in clusters][:50], state, facts)
