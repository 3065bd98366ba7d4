from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from projects.models import Project
from projects.services import check_member
from renderhub.admin_actions import ExplainRefusedActionsMixin, become, show_once

from . import services
from .models import ApiToken

# --- API tokens -------------------------------------------------------------------------


class ApiTokenForm(forms.ModelForm):
    class Meta:
        model = ApiToken
        fields = ("user", "name", "project", "expires_at")

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        # A superuser may pick any user and project: the token's user must be a member.
        if self.instance.pk is None and data.get("user") and data.get("project"):
            try:
                check_member(data["user"], data["project"])
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
        become(obj, token)
        show_once(request, f"The key of token {obj.name}", key)

    @admin.action(description="Revoke selected tokens", permissions=["change"])
    def revoke_tokens(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        count = sum(services.revoke_token(t) for t in queryset)
        self.message_user(request, f"Revoked {count} tokens.")
