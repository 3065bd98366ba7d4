"""Celery tasks: thin wrappers that take ids and call the services."""

from __future__ import annotations

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from . import outputs, runner, services


@shared_task(ignore_result=True)
def dispatch_pending() -> int:
    return services.dispatch_pending()


@shared_task(
    bind=True,
    ignore_result=True,
    acks_late=True,
    reject_on_worker_lost=True,
    # The agent enforces RENDER_TIMEOUT itself; these only catch a wedged worker.
    soft_time_limit=settings.RENDER_TIMEOUT + 300,
    time_limit=settings.RENDER_TIMEOUT + 600,
    throws=(SoftTimeLimitExceeded,),
)
def render_chunk(self, task_id: int) -> str:  # type: ignore[no-untyped-def]
    from clusters import heartbeat

    node = heartbeat.hostname() or self.request.hostname or "worker"
    return runner.run_chunk(task_id, node, heartbeat.concurrency())


@shared_task(ignore_result=True)
def reap_stale_tasks() -> int:
    return services.reap_stale_tasks()


@shared_task(ignore_result=True, autoretry_for=(OSError,), max_retries=3, retry_backoff=True)
def download_outputs(job_id: int) -> str:
    return str(outputs.download_job_outputs(job_id))
