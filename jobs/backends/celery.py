"""The celery backend: one Celery task per chunk on the cluster's queue, sent when a
node slot is free for it (jobs.dispatch decides which).

The manager's own render workers (``celery -A renderhub worker -Q render.<cluster>``)
claim each chunk atomically in the database and see a cancel through the task row; render
nodes without keys (``renderhub.node``) claim it over the broker and learn of a cancel in
the answer to their next heartbeat (jobs.node_claims, jobs.node_requests). Either way a
duplicate delivery does nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.utils import timezone

from jobs.event_tokens import claim_ticket
from jobs.tasks import render_chunk

if TYPE_CHECKING:
    from clusters.models import Cluster
    from jobs.models import RenderJob, Task


def send_chunk(task_id: int, cluster: Cluster, countdown: float | None = None) -> str:
    """Send a chunk's message (with the ticket its claimer shows) to the cluster's queue;
    under the cluster's own key prefix when its nodes have a Redis user of their own
    (clusters.node_users). The message's id."""
    options: dict[str, Any] = {
        "args": (task_id,),
        "kwargs": {"ticket": claim_ticket(task_id)},
        "queue": cluster.queue,
        "countdown": countdown,
    }
    if not cluster.broker_prefix:
        return str(render_chunk.apply_async(**options).id)
    prefixed = {"global_keyprefix": cluster.broker_prefix}
    with render_chunk.app.connection_for_write(transport_options=prefixed) as connection:
        options["connection"] = connection  # Celery passes it on to send_task
        return str(render_chunk.apply_async(**options).id)


class CeleryBackend:
    name = "celery"

    def dispatch(self, job: RenderJob, tasks: list[Task]) -> None:
        # No broker priority: the manager sends a chunk only to a free slot, in its own
        # order (jobs.dispatch), so what is in the queue is what starts next.
        for task in tasks:
            message_id = send_chunk(task.pk, job.cluster)
            type(task).objects.filter(pk=task.pk).update(
                celery_task_id=message_id, queued_at=timezone.now()
            )

    def cancel(self, job: RenderJob, tasks: list[Task]) -> None:
        # The worker polls its task row every heartbeat and kills the renderer's process
        # group when it sees the cancel; queued messages find the row cancelled and skip.
        return None

    def poll(self, job: RenderJob) -> None:
        return None
