"""Admin actions that say why they were refused.

Every admin action declares ``permissions=``, so Django lists it only for users holding
them. Django then ignores a posted action the user may not run (with "No action selected."
or not a word when the user has no action at all); this mixin answers such a POST with a
message that names the permission instead, and runs nothing.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import Model
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.html import format_html


class ExplainRefusedActionsMixin:
    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        admin_: admin.ModelAdmin[Any] = self  # type: ignore[assignment]
        name = request.POST.get("action", "") if request.method == "POST" else ""
        if name and name in (admin_.actions or ()) and name not in admin_.get_actions(request):
            func = getattr(admin_, name)
            needed = ", ".join(getattr(func, "allowed_permissions", ())) or "a"
            description = getattr(func, "short_description", name)
            admin_.message_user(
                request,
                f"You may not run “{description}”: it needs the {needed} permission "
                f"on {admin_.opts.verbose_name_plural}.",
                messages.ERROR,
            )
            return HttpResponseRedirect(request.get_full_path())
        return super().changelist_view(request, extra_context)  # type: ignore[misc]


def show_once(request: HttpRequest, what: str, value: str) -> None:
    messages.warning(
        request,
        format_html(
            "{}: <code>{}</code> — copy it now: it is not stored readably and "
            "cannot be shown again.",
            what,
            value,
        ),
    )


def become(obj: Model, created: Model) -> None:
    """Make the admin's unsaved object the row a service created: the admin logs it,
    links to it and saves its inlines with it."""
    obj.pk = created.pk
    obj.refresh_from_db()
