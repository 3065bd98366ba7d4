"""Webhooks in the admin: created through the service (the secret shown once), a test event,
secret rotation, and the delivery log. Staff see only their projects' webhooks."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from projects.models import Project
from renderhub.admin_actions import ExplainRefusedActionsMixin, become, show_once

from . import services
from .choices import WebhookEvent
from .models import Webhook, WebhookDelivery

# --- Webhooks ---------------------------------------------------------------------------


class WebhookForm(forms.ModelForm):
    url = forms.URLField(label="URL", max_length=1000, assume_scheme="https")
    events = forms.MultipleChoiceField(
        choices=WebhookEvent.choices, widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = Webhook
        fields = ("project", "name", "url", "events", "active")


class DeliveryInline(admin.TabularInline):
    model = WebhookDelivery
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True
    fields = ("created_at", "event", "state", "attempts", "response_status", "error")
    readonly_fields = fields
    ordering = ("-created_at",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[WebhookDelivery]:
        # The newest only: a busy webhook has thousands (the delivery list has them all).
        recent = super().get_queryset(request).order_by("-created_at")
        ids = list(recent.values_list("pk", flat=True)[:20])
        return recent.filter(pk__in=ids)


def _visible(request: HttpRequest, queryset: QuerySet[Any], field: str) -> QuerySet[Any]:
    if request.user.is_superuser:
        return queryset
    return queryset.filter(**{f"{field}__in": Project.objects.visible_to(request.user)})


@admin.register(Webhook)
class WebhookAdmin(ExplainRefusedActionsMixin, admin.ModelAdmin):
    form = WebhookForm
    list_display = ("__str__", "project", "url", "event_list", "active", "created_at")
    list_filter = ("active", ("project", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("project",)
    search_fields = ("name", "url")
    actions = ["send_test_event", "rotate_secret"]
    inlines = [DeliveryInline]

    @admin.display(description="events")
    def event_list(self, webhook: Webhook) -> str:
        return ", ".join(webhook.events)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Webhook]:
        return _visible(request, super().get_queryset(request), "project")

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "project":
            kwargs["queryset"] = Project.objects.visible_to(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, obj: Webhook, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        # The form offers only the user's projects; the service holds the rule all the same.
        webhook, secret = services.create_webhook(
            obj.project,
            obj.url,
            obj.events,
            name=obj.name,
            active=obj.active,
            created_by=request.user,  # type: ignore[arg-type]
        )
        become(obj, webhook)
        show_once(request, f"The signing secret of webhook {obj}", secret)

    @admin.action(description="Send a test event", permissions=["change"])
    def send_test_event(self, request: HttpRequest, queryset: QuerySet[Webhook]) -> None:
        for webhook in queryset:
            services.send_test_event(webhook)
        self.message_user(
            request, f"Queued a test event to {queryset.count()} webhooks; see their deliveries."
        )

    # Only who may change the webhook rotates its secret, and sees the new one once.
    @admin.action(description="Rotate the signing secret", permissions=["change"])
    def rotate_secret(self, request: HttpRequest, queryset: QuerySet[Webhook]) -> None:
        for webhook in queryset:
            show_once(
                request, f"The new secret of webhook {webhook}", services.rotate_secret(webhook)
            )


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "event",
        "webhook",
        "state",
        "attempts",
        "response_status",
        "duration_ms",
        "error",
    )
    # Only webhooks with visible deliveries: other projects' URLs must not show up here.
    list_filter = ("state", "event", ("webhook", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("webhook",)
    search_fields = ("=id", "webhook__url", "error")
    date_hierarchy = "created_at"
    show_full_result_count = False
    readonly_fields = (
        "id",
        "webhook",
        "event",
        "state",
        "attempts",
        "payload",
        "response_status",
        "response_body",
        "error",
        "duration_ms",
        "history",
        "created_at",
        "last_attempt_at",
        "next_attempt_at",
        "delivered_at",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[WebhookDelivery]:
        return _visible(request, super().get_queryset(request), "webhook__project")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
