from __future__ import annotations

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import login_not_required
from django.db.models import F
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from clusters.models import ClusterNode

from . import status


@login_not_required
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness for load balancers: 200 when database, broker and storage answer, else 503."""
    checks = status.run_checks()
    body = {
        "status": "ok" if all(c.ok for c in checks) else "fail",
        "checks": {c.name: {"ok": c.ok, "seconds": c.seconds} for c in checks},
    }
    return JsonResponse(body, status=200 if body["status"] == "ok" else 503)


@staff_member_required  # anonymous and non-staff users go to the login
@never_cache
def system_status(request: HttpRequest) -> HttpResponse:
    from django.contrib import admin

    # Paths, key ids and every cluster's nodes are for whoever runs the installation.
    if not request.user.is_superuser:
        return HttpResponseForbidden(
            "System status is for superusers only: it shows the installation's paths, key ids "
            "and every cluster's nodes.",
            content_type="text/plain; charset=utf-8",
        )

    # Most recently seen first; nodes that never reported last (PostgreSQL sorts NULL first).
    nodes = ClusterNode.objects.select_related("cluster").order_by(
        F("last_seen").desc(nulls_last=True), "name"
    )[:50]
    context = {
        **admin.site.each_context(request),
        "title": "System status",
        "version": settings.RENDERHUB_VERSION,
        "checks": status.run_checks(),
        "settings_rows": status.effective_settings(),
        "sandboxes": status.sandbox_rows(),
        "nodes": nodes,
    }
    return render(request, "ops/system_status.html", context)
