"""The celery backend: one Celery task per chunk on the cluster's queue.

Render workers (``celery -A renderhub worker -Q render.<cluster>``) claim each chunk
atomically in the database, so a duplicate delivery does nothing; cancellation is seen
by the running worker through the task row, which works with every broker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.utils import timezone

from jobs.tasks import render_chunk

if TYPE_CHECKING:
    from jobs.models import RenderJob, Task


class CeleryBackend:
    name = "celery"

    def dispatch(self, job: RenderJob, tasks: list[Task]) -> None:
        # Redis priorities: 0 is served first; our job priority says "higher runs first".
        priority = max(0, min(9, 5 - job.priority))
        for task in tasks:
            result = render_chunk.apply_async(
                args=(task.pk,), queue=job.cluster.queue, priority=priority
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
