"""The admin site: a login form that explains lockouts, and django-celery-beat's periodic
task admin with permissions on its actions.

Beat's actions (enable, disable, toggle, run now) declare no permissions, so staff who may
only view periodic tasks could switch beat's schedule off or run any task at will. The
same actions are re-declared here with ``permissions=["change"]``.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django_celery_beat import admin as beat_admin  # registers PeriodicTaskAdmin first
from django_celery_beat.models import PeriodicTask

from .admin_actions import ExplainRefusedActionsMixin
from .auth import ThrottledAuthenticationForm

admin.site.login_form = ThrottledAuthenticationForm


class PeriodicTaskAdmin(ExplainRefusedActionsMixin, beat_admin.PeriodicTaskAdmin):
    @admin.action(description="Enable selected tasks", permissions=["change"])
    def enable_tasks(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> Any:
        return super().enable_tasks(request, queryset)

    @admin.action(description="Disable selected tasks", permissions=["change"])
    def disable_tasks(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> Any:
        return super().disable_tasks(request, queryset)

    @admin.action(description="Toggle activity of selected tasks", permissions=["change"])
    def toggle_tasks(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> Any:
        return super().toggle_tasks(request, queryset)

    @admin.action(description="Run selected tasks", permissions=["change"])
    def run_tasks(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> Any:
        return super().run_tasks(request, queryset)


admin.site.unregister(PeriodicTask)
admin.site.register(PeriodicTask, PeriodicTaskAdmin)
