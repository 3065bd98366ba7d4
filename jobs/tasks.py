"""Celery tasks: thin wrappers that take ids and call the services."""

from __future__ import annotations

from celery import shared_task
from celery.contrib.django.task import DjangoTask
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from renderhub.storage import StorageError

from . import outputs, runner, scheduling, services


@shared_task(ignore_result=True)
def dispatch_pending() -> int:
    scheduling.refresh_waiting()  # jobs whose upstream finished while no signal was heard
    return services.dispatch_pending()


class RenderChunkTask(DjangoTask):
    """Time limits read from settings when the worker asks, not when this module is imported.

    The agent enforces RENDER_TIMEOUT itself; these only catch a wedged worker.
    """

    @property
    def soft_time_limit(self) -> int:  # type: ignore[override]  # Task declares a plain attribute
        return int(settings.RENDER_TIMEOUT) + 300

    @property
    def time_limit(self) -> int:  # type: ignore[override]  # Task declares a plain attribute
        return int(settings.RENDER_TIMEOUT) + 600


@shared_task(
    base=RenderChunkTask,
    bind=True,
    ignore_result=True,
    acks_late=True,
    reject_on_worker_lost=True,
    throws=(SoftTimeLimitExceeded,),
)
def render_chunk(self, task_id: int, ticket: str = "") -> str:
    """A worker with the database claims the chunk itself; ``ticket`` is for the nodes
    without one (``renderhub.node``), which claim over the broker."""
    from jobs import heartbeat

    node = heartbeat.hostname() or self.request.hostname or "worker"
    return runner.run_chunk(task_id, node)


@shared_task(ignore_result=True)
def reap_stale_tasks() -> int:
    return services.reap_stale_tasks()


@shared_task(ignore_result=True, autoretry_for=(OSError,), max_retries=3, retry_backoff=True)
def download_outputs(job_id: int) -> str:
    return str(outputs.download_job_outputs(job_id))


# --- BatchCompute cloud jobs (beat polls them; each ended one is finished once) ------------


@shared_task(ignore_result=True)
def poll_cloud_jobs() -> int:
    from .backends.batchcompute.poll import poll_all

    report = poll_all()
    for pk in report.to_finish:  # a duplicate is harmless: finish() claims the row
        finish_cloud_job.delay(pk)
    return report.polled


@shared_task(ignore_result=True, autoretry_for=(StorageError,), max_retries=3, retry_backoff=True)
def finish_cloud_job(cloud_job_id: int) -> int:
    from .backends.batchcompute.finish import finish

    return finish(cloud_job_id)
