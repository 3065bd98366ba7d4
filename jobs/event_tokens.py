"""Which events the drain believes: those carrying their chunk attempt's token.

Anyone who can publish to the events queue could otherwise report frames of any running
chunk. The manager issues a token with each chunk attempt it hands out (an HMAC of the
chunk, the attempt and the moment it was claimed, under the project's SECRET_KEY, so
nothing is stored); the node's
``EventSender.authorize`` attaches it to that attempt's events, and ``events.apply_events``
drops an event whose token is missing or wrong. A node learns the tokens of its own chunks
only, and a token is worth nothing after its attempt ends (events of another attempt are
ignored anyway).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils.crypto import constant_time_compare, salted_hmac

SALT = "renderhub.node-events.chunk-attempt"
TICKET_SALT = "renderhub.node-claim"


def chunk_token(task_id: int, attempt: int, started: datetime | None) -> str:
    """The token of one attempt of one chunk, begun at ``started`` (``Task.started_at``, set
    by each claim): a retried job numbers its chunks' attempts from 1 again, and the token
    of an earlier attempt 1 must not be good for the new one."""
    stamp = started.isoformat() if started else ""
    message = f"{task_id}:{attempt}:{stamp}"
    return salted_hmac(SALT, message, algorithm="sha256").hexdigest()[:32]


def token_of(task: Any) -> str:
    """The token of a chunk's current attempt."""
    return chunk_token(task.pk, task.attempts, task.started_at)


def is_genuine(event: dict[str, Any], started: datetime | None) -> bool:
    """True if the event carries the token of the chunk attempt it names, the one that
    began at ``started``."""
    token = event.get("token")
    return isinstance(token, str) and constant_time_compare(
        token, chunk_token(event["task"], event["attempt"], started)
    )


def claim_ticket(task_id: int) -> str:
    """What a chunk's message carries so that whoever received it may claim the chunk
    (``jobs.node_claims``): a node cannot take chunks it was never sent."""
    return salted_hmac(TICKET_SALT, str(task_id), algorithm="sha256").hexdigest()[:32]
