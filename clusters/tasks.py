"""Celery tasks for BatchCompute clusters: thin wrappers that take ids and call the services.

The render cloud-job tasks (``poll_cloud_jobs``, ``finish_cloud_job``) are jobs.tasks'.
"""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(ignore_result=True)
def sync_clusters() -> int:
    return services.sync_all()
