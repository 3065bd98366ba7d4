from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import login_not_required
from django.contrib.staticfiles.storage import staticfiles_storage
from django.core.exceptions import ValidationError
from django.db.models import Case, F, When
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseForbidden,
    HttpResponsePermanentRedirect,
    JsonResponse,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST, require_safe

from clusters import services as clusters_services
from clusters.models import Cluster, ClusterNode
from images.models import ComputeImage
from jobs import live as jobs_live
from jobs import queries as jobs_queries
from projects.models import Project
from renderhub.htmx import is_htmx, not_modified, tag
from workflows.models import WorkflowRun

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


@login_not_required
@require_safe
def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask for /favicon.ico on every page that names no icon (the admin's, files)."""
    return HttpResponsePermanentRedirect(staticfiles_storage.url("img/favicon.ico"))


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
        "waiting": clusters_services.unassigned_workers(),
        "local_images": ComputeImage.objects.order_by(
            Case(When(image_id="local", then=0), default=1), "name"
        ),
        "can_create_cluster": request.user.has_perm("clusters.add_cluster"),
        "version": settings.RENDERHUB_VERSION,
        "checks": status.run_checks(),
        "settings_rows": status.effective_settings(),
        "sandboxes": status.sandbox_rows(),
        "refused_output_dirs": status.refused_output_dirs(),
        "nodes": nodes,
    }
    return render(request, "ops/system_status.html", context)


@staff_member_required
@require_POST
def create_cluster_for_workers(request: HttpRequest) -> HttpResponse:
    """System status's one click: the own-machines cluster that waiting workers name."""
    if not (request.user.is_superuser and request.user.has_perm("clusters.add_cluster")):
        return HttpResponseForbidden("Creating clusters needs a superuser.")
    name = request.POST.get("name", "")
    image = get_object_or_404(ComputeImage, pk=request.POST.get("image") or 0)
    if not clusters_services.unassigned_workers().get(name):
        messages.error(request, f"No worker is waiting for a cluster named {name!r}.")
    elif Cluster.objects.filter(name=name).exists():
        messages.error(request, f"Cluster {name!r} exists already; its workers join it shortly.")
    else:
        try:
            cluster = clusters_services.create_for_workers(name, image, user=request.user)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(
                request,
                f"Cluster {cluster.name} created with {cluster.nodes.count()} node(s); "
                "render jobs can be submitted to it now.",
            )
    return redirect("system-status")


@require_safe
def dashboard(request: HttpRequest) -> HttpResponse:
    """The site's front page: running render jobs, recent failures, clusters and nodes, and
    recent workflow runs (the live panel alone when htmx polls it)."""
    if is_htmx(request):  # the running panel's poll: 304 while those jobs have not moved
        active = jobs_queries.active_jobs(request.user)
        etag = jobs_live.jobs_version(request.user, active, "dash")
        if unchanged := not_modified(request, etag):
            return unchanged
        context = jobs_queries.dashboard(request.user) | {"etag": etag}
        return tag(render(request, "jobs/_running_panel.html", context), etag)
    context = jobs_queries.dashboard(request.user)
    context["projects"] = list(Project.objects.visible_to(request.user)[:20])
    context["workflow_runs"] = list(
        WorkflowRun.objects.visible_to(request.user).select_related("project").order_by("-pk")[:10]
    )
    return render(request, "dashboard.html", context)
