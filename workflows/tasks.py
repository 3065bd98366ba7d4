"""Celery tasks: thin wrappers that take ids and call the services."""

from __future__ import annotations

import socket

from celery import shared_task

from . import services


@shared_task(bind=True, ignore_result=True, acks_late=True, reject_on_worker_lost=True)
def start_run(self, run_id: int) -> str:
    # A miniwdl run executes here to its end; a duplicate delivery finds it claimed.
    worker = self.request.hostname or socket.gethostname()
    return services.start_run(run_id, worker)


@shared_task(ignore_result=True)
def poll_runs() -> int:
    return services.poll_runs()
