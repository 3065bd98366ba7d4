"""The celery backend: one Celery task per chunk on the cluster's queue, sent when a
node slot is free for it (jobs.dispatch decides which).

Render workers (``celery -A renderhub worker -Q render.<cluster>``) claim each chunk
atomically in the database, so a duplicate delivery does nothing; cancellation is seen
by the running worker through the task row, which works with every broker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.utils import timezone

from jobs.event_tokens import claim_ticket
from jobs.tasks import render_chunk

if TYPE_CHECKING:
    from jobs.models import RenderJob, Task


class CeleryBackend:
    name = "celery"

    def dispatch(self, job: RenderJob, tasks: list[Task]) -> None:
        # No broker priority: the manager sends a chunk only to a free slot, in its own
        # order (jobs.dispatch), so what is in the queue is what starts next.
        for task in tasks:
            result = render_chunk.apply_async(
                args=(task.pk,), kwargs={"ticket": claim_ticket(task.pk)}, queue=job.cluster.queue
            )
            type(task).objects.filter(pk=task.pk).update(
                celery_task_id=result.id, queued_at=timezone.now()
            )

    def cancel(self, job: RenderJob, tasks: list[Task]) -> None:
        # The worker polls its task row every heartbeat and kills the renderer's process
        # group when it sees the cancel; queued messages find the row cancelled and skip.
        return None

    def poll(self, job: RenderJob) -> None:
        return None
