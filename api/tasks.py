"""Celery tasks: thin wrappers that take ids and call the services."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from . import notifications, services


@shared_task(bind=True, ignore_result=True, acks_late=True, max_retries=None)
def deliver_webhook(self, delivery_id: str) -> str:  # type: ignore[no-untyped-def]
    """One attempt; a retryable failure comes back after the service's backoff."""
    outcome = services.attempt_delivery(delivery_id)
    if outcome.retry_in is not None:
        # The row counts attempts against WEBHOOK_MAX_ATTEMPTS; Celery's cap is a backstop.
        raise self.retry(countdown=outcome.retry_in, max_retries=settings.WEBHOOK_MAX_ATTEMPTS)
    return outcome.state


@shared_task(ignore_result=True)
def requeue_overdue_deliveries() -> int:
    return services.requeue_overdue_deliveries()


@shared_task(
    ignore_result=True,
    autoretry_for=(OSError,),  # SMTP and socket errors
    max_retries=3,
    retry_backoff=60,
)
def send_job_email(job_id: int, state: str) -> bool:
    return notifications.send_job_ended(job_id, state)


@shared_task(ignore_result=True, autoretry_for=(OSError,), max_retries=3, retry_backoff=60)
def send_workflow_email(run_id: int, state: str) -> bool:
    return notifications.send_run_ended(run_id, state)
