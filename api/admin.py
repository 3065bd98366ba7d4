from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html

from projects.models import Project
from renderhub.admin_actions import ExplainRefusedActionsMixin

from . import services
from .choices import WebhookEvent
from .models import ApiToken, Webhook, WebhookDelivery


def _show_once(request: HttpRequest, what: str, value: str) -> None:
    messages.warning(
        request,
        format_html(
            "{}: <code>{}</code> — copy it now: it is not stored readably and "
            "cannot be shown again.",
            what,
            value,
        ),
    )


def _become(obj: Model, created: Model) -> None:
    """Make the admin's unsaved object the row a service created: the admin logs it,
    links to it and saves its inlines with it."""
    obj.pk = created.pk
    obj.refresh_from_db()


# --- API tokens -------------------------------------------------------------------------


class ApiTokenForm(forms.ModelForm):
    class Meta:
        model = ApiToken
        fields = ("user", "name", "project", "expires_at")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        # A superuser may pick any user and project: the token's user must be a member.
        if self.instance.pk is None and data.get("user") and data.get("project"):
            try:
                services.check_member(data["user"], data["project"])
            except ValidationError as exc:
                self.add_error(None, exc)
        return data


@admin.register(ApiToken)
class ApiTokenAdmin(ExplainRefusedActionsMixin, admin.ModelAdmin):
    form = ApiTokenForm
    list_display = (
        "prefix",
        "name",
        "user",
        "project",
        "status",
        "created_at",
        "last_used_at",
        "expires_at",
    )
    list_select_related = ("user", "project")
    list_filter = ("revoked_at", "expires_at")
    search_fields = ("prefix", "name", "user__username")
    actions = ["revoke_tokens"]
    readonly_fields = ("prefix", "created_at", "last_used_at", "revoked_at")

    @admin.display(description="status")
    def status(self, token: ApiToken) -> str:
        if token.revoked_at:
            return "revoked"
        if token.expires_at and token.expires_at <= timezone.now():
            return "expired"
        return "active"

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApiToken]:
        tokens = super().get_queryset(request)
        return tokens if request.user.is_superuser else tokens.filter(user=request.user)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is not None:  # keys are never edited: revoke one and create another
            return (*self.readonly_fields, "user", "project", "expires_at")
        return self.readonly_fields

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "user" and not request.user.is_superuser:
            kwargs["queryset"] = db_field.related_model.objects.filter(pk=request.user.pk)
        if db_field.name == "project":
            kwargs["queryset"] = Project.objects.visible_to(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, obj: ApiToken, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        token, key = services.create_token(
            obj.user, obj.name, expires_at=obj.expires_at, project=obj.project
        )
        _become(obj, token)
        _show_once(request, f"The key of token {obj.name}", key)

    @admin.action(description="Revoke selected tokens", permissions=["change"])
    def revoke_tokens(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        count = sum(services.revoke_token(t) for t in queryset)
        self.message_user(request, f"Revoked {count} tokens.")


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
        _become(obj, webhook)
        _show_once(request, f"The signing secret of webhook {obj}", secret)

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
            _show_once(
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
