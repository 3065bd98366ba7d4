"""Webhooks of a project's events and their deliveries (tables made by the api app)."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from .choices import DeliveryState, WebhookEvent

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def validate_webhook_url(url: str) -> None:
    """https:// only; http:// to this machine when DEBUG or WEBHOOKS_ALLOW_HTTP_LOCALHOST."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        raise ValidationError("Put no user name or password in the URL; check the signature.")
    if parts.scheme == "https" and parts.hostname:
        return
    local_http = settings.DEBUG or settings.WEBHOOKS_ALLOW_HTTP_LOCALHOST
    if parts.scheme == "http" and parts.hostname in LOCAL_HOSTS and local_http:
        return
    raise ValidationError("Webhook URLs must start with https://.")


def _default_events() -> list[str]:
    return [WebhookEvent.JOB_STATE_CHANGED]


class Webhook(models.Model):
    """A receiver of a project's events, which are signed with the webhook's secret."""

    project = models.ForeignKey(
        "projects.Project", on_delete=models.CASCADE, related_name="webhooks"
    )
    name = models.CharField(max_length=100, blank=True)
    url = models.URLField("URL", max_length=1000, validators=[validate_webhook_url])
    events = models.JSONField(
        default=_default_events, help_text="Which events to send (see the event list)."
    )
    # Fernet-encrypted (notifications.signing): signing needs the secret itself, not a hash.
    secret_encrypted = models.TextField(editable=False)
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, editable=False
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "api_webhook"  # created by the api app, before notifications had one
        ordering = ["project", "id"]

    def __str__(self) -> str:
        return self.name or self.url

    def clean(self) -> None:
        known = set(WebhookEvent.values)
        if not isinstance(self.events, list) or not self.events:
            raise ValidationError({"events": "Choose at least one event."})
        if unknown := [e for e in self.events if e not in known]:
            raise ValidationError({"events": f"Unknown events: {', '.join(map(str, unknown))}."})

    def wants(self, event: str) -> bool:
        return event in self.events


class WebhookDelivery(models.Model):
    """One event sent to one webhook, with every attempt's outcome (newest in the columns)."""

    id = models.UUIDField(
        primary_key=True, default=uuid.uuid4, editable=False, help_text="X-RenderHub-Delivery"
    )
    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=50)
    payload = models.JSONField()
    state = models.CharField(
        max_length=20, choices=DeliveryState.choices, default=DeliveryState.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True, help_text="The start of the receiver's answer.")
    error = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    history = models.JSONField(default=list, blank=True, help_text="Every attempt, oldest first.")
    created_at = models.DateTimeField(auto_now_add=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "api_webhookdelivery"  # created by the api app
        ordering = ["-created_at"]
        verbose_name_plural = "webhook deliveries"
        indexes = [models.Index(fields=["webhook", "-created_at"], name="delivery_webhook_created")]

    def __str__(self) -> str:
        return f"{self.event} → {self.webhook} ({self.state})"
