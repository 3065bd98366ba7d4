"""Webhooks and e-mail notifications. The admin, the Celery tasks and the job and workflow
signal receivers all call these.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

import requests
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone

from jobs.choices import TERMINAL_JOB_STATES
from jobs.models import RenderJob
from projects.services import check_member
from workflows.choices import TERMINAL_RUN_STATES
from workflows.models import WorkflowRun

from . import signing, webhook_http
from .choices import PING_EVENT, DeliveryState, WebhookEvent
from .email import mailable
from .models import Webhook, WebhookDelivery, validate_webhook_url

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from projects.models import Project

log = logging.getLogger(__name__)

RESPONSE_EXCERPT = 2000
MAX_REDIRECTS = 3
RETRY_STATUSES = frozenset({408, 425, 429})
# One text for every network failure: telling refused, reset, TLS and timeout apart would
# make webhooks a port scanner. The server log keeps the detail.
UNREACHABLE = "No HTTP answer from the receiver: the connection failed or timed out."


# --- Webhooks: configuration ------------------------------------------------------------


def create_webhook(
    project: Project,
    url: str,
    events: list[str],
    *,
    name: str = "",
    active: bool = True,
    created_by: User | None = None,
) -> tuple[Webhook, str]:
    """A new webhook and its secret; the secret is shown once, kept only encrypted.

    A person creating it (``created_by``) must be a member of the project; without one,
    RenderHub itself makes it.
    """
    if created_by is not None:
        check_member(created_by, project)
    secret = signing.new_secret()
    webhook = Webhook(
        project=project,
        url=url,
        events=list(events),
        name=name,
        active=active,
        created_by=created_by,
        secret_encrypted=signing.encrypt(secret),
    )
    webhook.full_clean()
    webhook.save()
    return webhook, secret


def rotate_secret(webhook: Webhook) -> str:
    """A new secret for the webhook (deliveries from now on are signed with it)."""
    secret = signing.new_secret()
    webhook.secret_encrypted = signing.encrypt(secret)
    webhook.save(update_fields=["secret_encrypted", "updated_at"])
    return secret


# --- Webhooks: events -------------------------------------------------------------------


def job_summary(job: RenderJob) -> dict[str, Any]:
    return {
        "id": job.pk,
        "name": job.name,
        "project": job.project.name,
        "state": job.state,
        "frame_count": job.frame_count,
        "frames_done": job.frames_done,
        "frames_failed": job.frames_failed,
        "failure_reason": job.failure_reason,
        "created_at": job.created_at.isoformat(),
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "output_url": job.output_url,
        "api_url": f"/api/jobs/{job.pk}/",
    }


def emit(project: Project, event: str, data: dict[str, Any]) -> list[WebhookDelivery]:
    """Queue a delivery of ``event`` to each active webhook of the project that wants it."""
    # Few webhooks per project, and JSON "contains" lookups are not portable: filter here.
    hooks = Webhook.objects.filter(project=project, active=True).select_related("project")
    return [_new_delivery(h, event, data) for h in hooks if h.wants(event)]


# What DjangoTask.delay_on_commit() does, spelt out: shared_task's stubs do not know the
# app's task class, and this way the task's arguments are checked.


def _enqueue_delivery(delivery_id: str) -> None:
    from .tasks import deliver_webhook

    transaction.on_commit(functools.partial(deliver_webhook.delay, delivery_id))


def _enqueue_email(job_id: int, state: str) -> None:
    from .tasks import send_job_email

    transaction.on_commit(functools.partial(send_job_email.delay, job_id, state))


def _enqueue_run_email(run_id: int, state: str) -> None:
    from .tasks import send_workflow_email

    transaction.on_commit(functools.partial(send_workflow_email.delay, run_id, state))


def _new_delivery(webhook: Webhook, event: str, data: dict[str, Any]) -> WebhookDelivery:
    delivery = WebhookDelivery(webhook=webhook, event=event, payload={})
    delivery.payload = {
        "id": str(delivery.id),
        "event": event,
        "created_at": timezone.now().isoformat(),
        "project": {"id": webhook.project_id, "name": webhook.project.name},
        "data": data,
    }
    delivery.save()
    _enqueue_delivery(str(delivery.id))
    return delivery


def job_state_changed(job_id: int, old_state: str, new_state: str) -> list[WebhookDelivery]:
    """Webhooks for the change, and an e-mail to the submitter when the job has ended."""
    job = RenderJob.objects.select_related("project", "submitted_by").filter(pk=job_id).first()
    if job is None:
        return []
    deliveries = emit(
        job.project,
        WebhookEvent.JOB_STATE_CHANGED,
        {"old_state": old_state, "new_state": new_state, "job": job_summary(job)},
    )
    if new_state in TERMINAL_JOB_STATES and settings.NOTIFY_BY_EMAIL and mailable(job.submitted_by):
        _enqueue_email(job.pk, new_state)
    return deliveries


def frame_failed(job_id: int, frame_number: int, reason: str) -> list[WebhookDelivery]:
    job = RenderJob.objects.select_related("project").filter(pk=job_id).first()
    if job is None:
        return []
    return emit(
        job.project,
        WebhookEvent.FRAME_FAILED,
        {
            "job": {"id": job.pk, "name": job.name, "api_url": f"/api/jobs/{job.pk}/"},
            "frame": frame_number,
            "reason": reason[:2000],
        },
    )


def run_summary(run: WorkflowRun) -> dict[str, Any]:
    return {
        "id": run.pk,
        "name": run.name,
        "project": run.project.name,
        "engine": run.engine,
        "state": run.state,
        "failure_message": run.failure_message[:5000],
        "created_at": run.created_at.isoformat(),
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "outputs_dir": run.outputs_dir,
        "api_url": f"/api/workflows/{run.pk}/",
    }


def workflow_state_changed(run_id: int, old_state: str, new_state: str) -> list[WebhookDelivery]:
    """Webhooks for the change, and an e-mail to the submitter when the run has ended."""
    run = WorkflowRun.objects.select_related("project", "submitted_by").filter(pk=run_id).first()
    if run is None:
        return []
    deliveries = emit(
        run.project,
        WebhookEvent.WORKFLOW_STATE_CHANGED,
        {"old_state": old_state, "new_state": new_state, "run": run_summary(run)},
    )
    if new_state in TERMINAL_RUN_STATES and settings.NOTIFY_BY_EMAIL and mailable(run.submitted_by):
        _enqueue_run_email(run.pk, new_state)
    return deliveries


def send_test_event(webhook: Webhook) -> WebhookDelivery:
    """A ``ping`` to this webhook (even an inactive one), to check the receiver."""
    return _new_delivery(
        webhook, PING_EVENT, {"message": "Test event from RenderHub.", "webhook": webhook.pk}
    )


# --- Webhooks: delivery -----------------------------------------------------------------


def backoff(attempt: int) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based): doubling, capped."""
    return min(settings.WEBHOOK_RETRY_BASE * 2 ** (attempt - 1), settings.WEBHOOK_RETRY_MAX)


@dataclass(frozen=True)
class Outcome:
    state: str
    retry_in: float | None = None  # seconds until the next attempt, when there is one


class _Refused(Exception):
    """A failure that another attempt cannot fix (bad URL, redirect elsewhere, 4xx)."""


def _same_origin(a: str, b: str) -> bool:
    pa, pb = urlsplit(a), urlsplit(b)
    return (pa.scheme, pa.hostname, pa.port) == (pb.scheme, pb.hostname, pb.port)


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    """POST once; follow only 307/308 redirects on the same origin. (status, body excerpt).

    Every connection goes to an address checked by :mod:`notifications.webhook_http` (no SSRF)."""
    timeout = (min(5.0, settings.WEBHOOK_TIMEOUT), settings.WEBHOOK_TIMEOUT)
    for _hop in range(MAX_REDIRECTS + 1):
        with (
            webhook_http.session() as http,
            http.post(
                url,
                data=body,
                headers=headers,
                timeout=timeout,
                allow_redirects=False,
                stream=True,
            ) as response,
        ):
            excerpt = response.raw.read(RESPONSE_EXCERPT * 4, decode_content=True) or b""
            text = excerpt.decode("utf-8", errors="replace")[:RESPONSE_EXCERPT]
            if response.status_code not in (307, 308):
                return response.status_code, text
            target = urljoin(url, response.headers.get("Location", ""))
        # Another host could be anyone: the signed body never goes there.
        if not _same_origin(url, target):
            raise _Refused(
                f"HTTP {response.status_code}: redirect to another host ({_safe_url(target)}) "
                "not followed"
            )
        url = target
    raise _Refused(f"more than {MAX_REDIRECTS} redirects")


def _safe_url(url: str) -> str:
    """The URL without its query (receivers sometimes put tokens there) for logs."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def requeue_overdue_deliveries() -> int:
    """Send again deliveries whose task message was lost (a worker killed while holding a
    retry's countdown, a broker outage at enqueue). Beat runs it; the claim in
    :func:`attempt_delivery` keeps a late original message from double-counting."""
    grace = timedelta(seconds=60 + 2 * settings.WEBHOOK_TIMEOUT)
    cutoff = timezone.now() - grace
    overdue = (
        WebhookDelivery.objects.filter(state__in=(DeliveryState.PENDING, DeliveryState.RETRYING))
        .annotate(due=Coalesce("next_attempt_at", "last_attempt_at", "created_at"))
        .filter(due__lt=cutoff)
        .order_by("due")
        .values_list("pk", flat=True)
    )
    count = 0
    for pk in overdue[:1000]:
        # Push the deadline on, so the next beat does not send it again meanwhile.
        WebhookDelivery.objects.filter(pk=pk).update(next_attempt_at=timezone.now())
        _enqueue_delivery(str(pk))
        count += 1
    return count


def attempt_delivery(delivery_id: str) -> Outcome:
    """Make the next attempt of a delivery and record it; say whether to try again, when."""
    now = timezone.now()
    # The claim makes a duplicated task message a no-op for a delivery already done.
    claimed = WebhookDelivery.objects.filter(
        pk=delivery_id, state__in=(DeliveryState.PENDING, DeliveryState.RETRYING)
    ).update(attempts=F("attempts") + 1, last_attempt_at=now, next_attempt_at=None)
    delivery = WebhookDelivery.objects.select_related("webhook").filter(pk=delivery_id).first()
    if delivery is None:
        return Outcome(DeliveryState.FAILED)
    if not claimed:
        return Outcome(delivery.state)
    webhook = delivery.webhook
    body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()
    status: int | None = None
    text = error = ""
    retryable = False
    started = time.monotonic()
    try:
        validate_webhook_url(webhook.url)  # settings may have changed since it was saved
        secret = signing.decrypt(webhook.secret_encrypted)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"RenderHub-Webhooks/{settings.RENDERHUB_VERSION}",
            signing.EVENT_HEADER: delivery.event,
            signing.DELIVERY_HEADER: str(delivery.id),
            "X-RenderHub-Attempt": str(delivery.attempts),
            signing.SIGNATURE_HEADER: signing.signature_header(secret, body),
        }
        status, text = _post(webhook.url, body, headers)
        if not 200 <= status < 300:
            error = f"HTTP {status}"
            retryable = status >= 500 or status in RETRY_STATUSES
    except (ValidationError, signing.SecretUnreadable, _Refused, webhook_http.NotPublic) as exc:
        error = "; ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
    except requests.RequestException as exc:
        # Timeouts, refused connections, TLS errors: the receiver may be back later.
        log.warning(
            "webhook delivery %s to %s: %s: %s",
            delivery.id,
            _safe_url(webhook.url),
            type(exc).__name__,
            exc,
        )
        error = UNREACHABLE
        retryable = True
    duration_ms = int((time.monotonic() - started) * 1000)

    ok = not error
    retry_in = None
    if ok:
        state = DeliveryState.SUCCEEDED
    elif retryable and delivery.attempts < settings.WEBHOOK_MAX_ATTEMPTS:
        state, retry_in = DeliveryState.RETRYING, backoff(delivery.attempts)
    else:
        state = DeliveryState.FAILED
    finished = timezone.now()
    history = [
        *delivery.history,
        {
            "attempt": delivery.attempts,
            "at": now.isoformat(),
            "status": status,
            "error": error,
            "duration_ms": duration_ms,
        },
    ]
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        state=state,
        response_status=status,
        response_body=text,
        error=error,
        duration_ms=duration_ms,
        history=history,
        delivered_at=finished if ok else None,
        next_attempt_at=finished + timedelta(seconds=retry_in) if retry_in is not None else None,
    )
    log.info(
        "webhook delivery %s (%s) to %s attempt %d: %s",
        delivery.id,
        delivery.event,
        _safe_url(webhook.url),
        delivery.attempts,
        error or f"HTTP {status}",
    )
    return Outcome(state, retry_in)
