"""Celery tasks: thin wrappers that take ids and call the services."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from . import email, services


@shared_task(bind=True, ignore_result=True, acks_late=True, max_retries=None)
def deliver_webhook(self, delivery_id: str) -> str:
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
    return email.send_job_ended(job_id, state)


@shared_task(ignore_result=True, autoretry_for=(OSError,), max_retries=3, retry_backoff=60)
def send_workflow_email(run_id: int, state: str) -> bool:
    return email.send_run_ended(run_id, state)


# --- The names these tasks had in the api app -------------------------------------------
# A delivery's retry waits in the broker (up to WEBHOOK_RETRY_MAX) under the name it was
# sent with, so messages sent before the move still arrive: forward them to the new tasks.


@shared_task(name="api.tasks.deliver_webhook", ignore_result=True)
def _old_deliver_webhook(delivery_id: str) -> None:
    deliver_webhook.delay(delivery_id)


@shared_task(name="api.tasks.requeue_overdue_deliveries", ignore_result=True)
def _old_requeue_overdue_deliveries() -> int:
    return services.requeue_overdue_deliveries()


@shared_task(name="api.tasks.send_job_email", ignore_result=True)
def _old_send_job_email(job_id: int, state: str) -> None:
    send_job_email.delay(job_id, state)


@shared_task(name="api.tasks.send_workflow_email", ignore_result=True)
def _old_send_workflow_email(run_id: int, state: str) -> None:
    send_workflow_email.delay(run_id, state)
