"""Webhooks: URLs, secrets at rest, signatures checked by a real receiver on 127.0.0.1,
retries with backoff, redirects, and the events that job state changes emit."""

from __future__ import annotations

import logging
import time

import pytest
from django.core.exceptions import ValidationError

from jobs import services as job_services
from jobs.choices import JobState, TaskState
from jobs.signals import job_state_changed
from notifications import services, signing, webhook_http
from notifications.choices import DeliveryState, WebhookEvent
from notifications.models import Webhook, WebhookDelivery, validate_webhook_url
from projects.models import Project

pytestmark = pytest.mark.django_db


def deliver_all(deliveries, max_rounds: int = 10) -> list[services.Outcome]:
    """Attempt each delivery until it ends, sleeping the computed backoff between tries."""
    outcomes = []
    for delivery in deliveries:
        for _ in range(max_rounds):
            outcome = services.attempt_delivery(str(delivery.pk))
            outcomes.append(outcome)
            if outcome.retry_in is None:
                break
            time.sleep(outcome.retry_in)
    return outcomes


# --- configuration ----------------------------------------------------------------------


def test_urls_must_be_https(settings) -> None:
    validate_webhook_url("https://hooks.example.com/renderhub")
    settings.WEBHOOKS_ALLOW_HTTP_LOCALHOST = False
    settings.DEBUG = False
    for url in (
        "http://hooks.example.com/x",
        "http://127.0.0.1:9000/x",
        "ftp://example.com/x",
        "https://user:pw@example.com/x",
    ):
        with pytest.raises(ValidationError):
            validate_webhook_url(url)
    settings.WEBHOOKS_ALLOW_HTTP_LOCALHOST = True
    validate_webhook_url("http://127.0.0.1:9000/x")
    validate_webhook_url("http://localhost/x")
    with pytest.raises(ValidationError):
        validate_webhook_url("http://10.0.0.1/x")  # only this machine, and only for tests


def test_events_must_be_known(project) -> None:
    with pytest.raises(ValidationError, match="Unknown events"):
        services.create_webhook(project, "https://example.com/h", ["job.exploded"])
    with pytest.raises(ValidationError, match="at least one"):
        services.create_webhook(project, "https://example.com/h", [])


def test_only_members_create_a_projects_webhooks(project, bob, charlie, alice) -> None:
    with pytest.raises(ValidationError) as info:
        services.create_webhook(
            project, "https://example.com/h", ["frame.failed"], created_by=charlie
        )
    assert info.value.message_dict == {"project": ["charlie is not a member of project shots."]}
    for member in (bob, alice):  # alice: a superuser
        hook, _secret = services.create_webhook(
            project, "https://example.com/h", ["frame.failed"], created_by=member
        )
        assert hook.created_by == member
    assert Webhook.objects.filter(created_by=charlie).count() == 0


def test_the_secret_is_encrypted_at_rest_and_rotatable(project, settings) -> None:
    hook, secret = services.create_webhook(project, "https://example.com/h", ["frame.failed"])
    stored = Webhook.objects.values_list("secret_encrypted", flat=True).get(pk=hook.pk)
    assert secret.startswith("whsec_") and secret not in stored
    assert signing.decrypt(stored) == secret
    # Key rotation: a new passphrase first, the old one still decrypts.
    old = settings.SECRET_KEY
    settings.WEBHOOK_ENCRYPTION_KEYS = ["new passphrase", old]
    assert signing.decrypt(stored) == secret
    settings.WEBHOOK_ENCRYPTION_KEYS = ["new passphrase"]
    with pytest.raises(signing.SecretUnreadable):
        signing.decrypt(stored)
    new = services.rotate_secret(hook)
    hook.refresh_from_db()
    assert new != secret and signing.decrypt(hook.secret_encrypted) == new


def test_verify_accepts_only_fresh_untampered_signatures() -> None:
    body = b'{"event":"ping"}'
    header = signing.signature_header("whsec_x", body)
    assert signing.verify("whsec_x", header, body)
    assert not signing.verify("whsec_y", header, body)
    assert not signing.verify("whsec_x", header, body + b" ")
    assert not signing.verify("whsec_x", header, body, now=time.time() + 3600)
    assert not signing.verify("whsec_x", "v1=abc", body)


# --- delivery ---------------------------------------------------------------------------


def test_a_state_change_is_delivered_signed(job, webhook, receiver, queued) -> None:
    [delivery] = services.job_state_changed(job.pk, JobState.QUEUED, JobState.RUNNING)
    assert queued["deliveries"] == [str(delivery.pk)]
    [outcome] = deliver_all([delivery])
    assert outcome == services.Outcome(DeliveryState.SUCCEEDED)

    [got] = receiver.received
    assert got.verified, "the receiver could not verify the HMAC with the shared secret"
    assert got.path == "/hooks/renderhub"
    assert got.headers["X-RenderHub-Event"] == "job.state_changed"
    assert got.headers["X-RenderHub-Delivery"] == str(delivery.pk)
    assert got.headers["Content-Type"] == "application/json"
    payload = got.json
    assert payload["id"] == str(delivery.pk) and payload["event"] == "job.state_changed"
    assert payload["project"] == {"id": job.project_id, "name": "shots"}
    assert payload["data"]["old_state"] == "queued" and payload["data"]["new_state"] == "running"
    assert payload["data"]["job"]["id"] == job.pk
    assert payload["data"]["job"]["api_url"] == f"/api/jobs/{job.pk}/"

    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.SUCCEEDED and delivery.attempts == 1
    assert delivery.response_status == 200 and delivery.response_body == '{"ok": true}'
    assert delivery.delivered_at is not None and delivery.duration_ms is not None
    assert [h["status"] for h in delivery.history] == [200]


def test_only_active_subscribed_webhooks_of_the_jobs_project_get_events(
    job, receiver, queued, image
) -> None:
    wanted, _ = services.create_webhook(job.project, receiver.url, ["job.state_changed"])
    services.create_webhook(job.project, receiver.url, ["frame.failed"])
    services.create_webhook(job.project, receiver.url, ["job.state_changed"], active=False)
    other = Project.objects.create(name="ads", image=image, output_prefix=job.project.output_prefix)
    services.create_webhook(other, receiver.url, list(WebhookEvent.values))
    deliveries = services.job_state_changed(job.pk, "queued", "running")
    assert [d.webhook for d in deliveries] == [wanted]
    assert services.job_state_changed(999999, "queued", "running") == []


def test_a_failing_receiver_is_retried_with_backoff_until_it_answers(
    job, webhook, receiver, queued
) -> None:
    receiver.script = [500, 503, 200]
    [delivery] = services.job_state_changed(job.pk, "queued", "running")
    outcomes = deliver_all([delivery])
    assert [o.state for o in outcomes] == ["retrying", "retrying", "succeeded"]
    assert [o.retry_in for o in outcomes] == [0.5, 1.0, None]  # WEBHOOK_RETRY_BASE doubling
    assert len(receiver.received) == 3 and all(r.verified for r in receiver.received)
    # The same delivery id each time, so a receiver can drop duplicates.
    assert {r.headers["X-RenderHub-Delivery"] for r in receiver.received} == {str(delivery.pk)}
    assert [r.headers["X-RenderHub-Attempt"] for r in receiver.received] == ["1", "2", "3"]
    gaps = [b.at - a.at for a, b in zip(receiver.received, receiver.received[1:], strict=False)]
    assert gaps[0] >= 0.5 and gaps[1] >= 1.0
    delivery.refresh_from_db()
    assert delivery.attempts == 3 and delivery.state == DeliveryState.SUCCEEDED
    assert [h["status"] for h in delivery.history] == [500, 503, 200]
    assert [h["error"] for h in delivery.history] == ["HTTP 500", "HTTP 503", ""]


def test_retries_stop_after_the_last_attempt(job, webhook, receiver, queued, settings) -> None:
    settings.WEBHOOK_MAX_ATTEMPTS = 2
    settings.WEBHOOK_RETRY_BASE = 0.05
    receiver.script = [500, 500, 500]
    [delivery] = services.job_state_changed(job.pk, "queued", "running")
    assert [o.state for o in deliver_all([delivery])] == ["retrying", "failed"]
    delivery.refresh_from_db()
    assert delivery.attempts == 2 and delivery.error == "HTTP 500"
    assert delivery.response_body == "receiver says no"
    # A duplicated task message for a finished delivery sends nothing.
    assert services.attempt_delivery(str(delivery.pk)).state == "failed"
    assert len(receiver.received) == 2


def test_deliveries_whose_message_was_lost_are_sent_again(job, webhook, queued, settings):
    from datetime import timedelta

    from django.utils import timezone

    settings.WEBHOOK_TIMEOUT = 10
    [lost] = services.job_state_changed(job.pk, "queued", "running")
    [fresh] = services.job_state_changed(job.pk, "running", "finished")
    [done] = services.job_state_changed(job.pk, "finished", "queued")
    long_ago = timezone.now() - timedelta(minutes=5)
    WebhookDelivery.objects.filter(pk=lost.pk).update(created_at=long_ago)
    WebhookDelivery.objects.filter(pk=done.pk).update(
        created_at=long_ago, state=DeliveryState.SUCCEEDED
    )
    queued["deliveries"].clear()
    assert services.requeue_overdue_deliveries() == 1
    assert queued["deliveries"] == [str(lost.pk)]
    assert services.requeue_overdue_deliveries() == 0  # not again on the next beat
    assert fresh.pk not in queued["deliveries"]


def test_the_backoff_is_bounded(settings) -> None:
    settings.WEBHOOK_RETRY_BASE = 30
    settings.WEBHOOK_RETRY_MAX = 3600
    assert [services.backoff(n) for n in (1, 2, 3, 8, 30)] == [30, 60, 120, 3600, 3600]


@pytest.mark.parametrize("status", [400, 404, 410])
def test_client_errors_are_not_retried(job, webhook, receiver, queued, status) -> None:
    receiver.script = [status]
    [delivery] = services.job_state_changed(job.pk, "queued", "running")
    assert [o.state for o in deliver_all([delivery])] == ["failed"]


def test_timeouts_and_refused_connections_are_retried(
    job, webhook, receiver, queued, settings
) -> None:
    settings.WEBHOOK_TIMEOUT = 0.3
    receiver.script = [("sleep", 1.5)]
    [delivery] = services.job_state_changed(job.pk, "queued", "running")
    outcome = services.attempt_delivery(str(delivery.pk))
    assert outcome.state == DeliveryState.RETRYING
    delivery.refresh_from_db()
    assert delivery.error == services.UNREACHABLE and delivery.response_status is None

    Webhook.objects.filter(pk=webhook.pk).update(url="http://127.0.0.1:9/nothing-listens")
    [second] = services.job_state_changed(job.pk, "running", "finished")
    assert services.attempt_delivery(str(second.pk)).state == DeliveryState.RETRYING
    second.refresh_from_db()
    assert second.error == services.UNREACHABLE  # the same text: no port scanner


def test_a_redirect_to_another_host_is_not_followed(job, webhook, receiver, queued) -> None:
    port = receiver.url.split(":")[2].split("/")[0]
    receiver.script = [(307, f"http://localhost:{port}/stolen")]
    [delivery] = services.job_state_changed(job.pk, "queued", "running")
    assert [o.state for o in deliver_all([delivery])] == ["failed"]
    assert [r.path for r in receiver.received] == ["/hooks/renderhub"]
    delivery.refresh_from_db()
    assert "redirect to another host" in delivery.error


def test_a_redirect_on_the_same_host_is_followed(job, webhook, receiver, queued) -> None:
    receiver.script = [(308, "/hooks/v2")]
    [delivery] = services.job_state_changed(job.pk, "queued", "running")
    assert [o.state for o in deliver_all([delivery])] == ["succeeded"]
    assert [r.path for r in receiver.received] == ["/hooks/renderhub", "/hooks/v2"]
    assert receiver.received[1].verified


def test_an_unreadable_secret_fails_without_sending(job, webhook, receiver, queued, settings):
    settings.WEBHOOK_ENCRYPTION_KEYS = ["another key"]
    [delivery] = services.job_state_changed(job.pk, "queued", "running")
    assert [o.state for o in deliver_all([delivery])] == ["failed"]
    delivery.refresh_from_db()
    assert "rotate the webhook's secret" in delivery.error and receiver.received == []


def test_the_secret_is_never_logged(job, webhook, receiver, queued, caplog) -> None:
    secret = signing.decrypt(webhook.secret_encrypted)
    receiver.script = [500]
    caplog.set_level(logging.DEBUG)
    [delivery] = services.job_state_changed(job.pk, "queued", "running")
    deliver_all([delivery])
    assert "webhook delivery" in caplog.text
    assert secret not in caplog.text
    assert secret not in str(WebhookDelivery.objects.values().get(pk=delivery.pk))


# --- events from the job services (the signals in jobs/signals.py) ------------------------


def test_cancelling_a_job_announces_it_and_mails_the_submitter(
    job, webhook, receiver, queued, django_capture_on_commit_callbacks, mailoutbox
) -> None:
    from notifications.tasks import send_job_email

    with django_capture_on_commit_callbacks(execute=True):
        job_services.cancel_job(job)
    [delivery] = WebhookDelivery.objects.all()
    assert delivery.payload["data"]["old_state"] == "queued"
    assert delivery.payload["data"]["new_state"] == "cancelled"
    assert delivery.payload["data"]["job"]["state"] == "cancelled"
    assert queued["emails"] == [(job.pk, "cancelled")]
    deliver_all([delivery])
    assert receiver.received[0].verified

    assert send_job_email(job.pk, "cancelled") is True  # the task, called as a function
    [mail] = mailoutbox
    assert mail.to == ["bob@example.com"]
    assert mail.subject == f"[RenderHub] Job #{job.pk} shot_a cancelled"
    assert "project shots" in mail.body and "0 of 6 done" in mail.body


def test_failed_frames_and_the_failed_job_are_announced(
    job, webhook, receiver, queued, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        for task in job.tasks.all():
            type(task).objects.filter(pk=task.pk).update(state=TaskState.RUNNING, attempts=1)
            task.refresh_from_db()
            job_services.task_finished(
                task, ok=False, reason="License server unreachable", exit_code=1, retryable=False
            )
    events = list(WebhookDelivery.objects.order_by("created_at").values_list("event", flat=True))
    assert events.count("frame.failed") == 6
    assert events.count("job.state_changed") == 1
    failed = WebhookDelivery.objects.filter(event="frame.failed")
    frames = sorted(d.payload["data"]["frame"] for d in failed)
    assert frames == [1, 2, 3, 4, 5, 6]
    assert failed[0].payload["data"]["reason"] == "License server unreachable"
    ended = WebhookDelivery.objects.get(event="job.state_changed")
    assert ended.payload["data"]["new_state"] == "failed"
    assert queued["emails"] == [(job.pk, "failed")]


def test_a_receiver_error_never_breaks_the_job_services(job, monkeypatch, caplog) -> None:
    def broken(*args):
        raise RuntimeError("database on fire")

    monkeypatch.setattr(services, "job_state_changed", broken)
    job_state_changed.send(sender=None, job_id=job.pk, old_state="queued", new_state="running")
    assert "could not queue notifications" in caplog.text


def test_no_mail_without_an_address_or_when_turned_off(job, queued, settings, bob) -> None:
    settings.NOTIFY_BY_EMAIL = False
    services.job_state_changed(job.pk, "running", "finished")
    assert queued["emails"] == []
    settings.NOTIFY_BY_EMAIL = True
    services.job_state_changed(job.pk, "finished", "queued")  # not an end
    assert queued["emails"] == []
    bob.email = ""
    bob.save()
    services.job_state_changed(job.pk, "running", "finished")
    assert queued["emails"] == []
    from notifications import email

    assert email.send_job_ended(job.pk, "finished") is False


def test_the_mail_links_to_the_job_when_the_site_url_is_set(job, settings) -> None:
    from notifications import email

    settings.RENDERHUB_SITE_URL = "https://render.example.com"
    job.failure_reason = "1 of 2 chunks failed; first: out of memory"
    subject, body = email.job_ended_message(job, "failed")
    assert subject.endswith("failed")
    assert "out of memory" in body
    assert f"https://render.example.com/admin/jobs/renderjob/{job.pk}/change/" in body


@pytest.mark.parametrize("url", ["https://10.1.2.3/hook", "https://169.254.169.254/latest"])
def test_receivers_on_private_addresses_are_refused_without_a_request(
    job, webhook, queued, url, settings
) -> None:
    Webhook.objects.filter(pk=webhook.pk).update(url=url)
    [delivery] = services.job_state_changed(job.pk, "queued", "running")
    assert [o.state for o in deliver_all([delivery])] == ["failed"]
    delivery.refresh_from_db()
    assert "not a public address" in delivery.error and delivery.response_status is None

    # An internal receiver on purpose: the guard lets it through (no request made here).
    settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS = True
    host = url.split("/")[2]
    webhook_http.check_addresses(host, [host])
