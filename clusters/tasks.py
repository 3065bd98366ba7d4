"""Celery tasks for BatchCompute: thin wrappers that take ids and call the services.

The cloud-job tasks live here, with the cluster sync, because they run only for
BatchCompute (they could move to jobs/tasks.py; beat names them by module path).
"""

from __future__ import annotations

from celery import shared_task

from renderhub.storage import StorageError

from . import services


@shared_task(ignore_result=True)
def sync_clusters() -> int:
    return services.sync_all()


@shared_task(ignore_result=True)
def poll_cloud_jobs() -> int:
    from jobs import cloud

    report = cloud.poll_all()
    for pk in report.to_finish:  # a duplicate is harmless: finish() claims the row
        finish_cloud_job.delay(pk)
    return report.polled


@shared_task(ignore_result=True, autoretry_for=(StorageError,), max_retries=3, retry_backoff=True)
def finish_cloud_job(cloud_job_id: int) -> int:
    from jobs import cloud

    return cloud.finish(cloud_job_id)
