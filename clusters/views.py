"""Cluster pages: nodes and their heartbeats, and a resize form when a resize service exists."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe

from renderhub.compute import ComputeError
from renderhub.htmx import is_htmx

from . import queries
from .models import Cluster


class ResizeForm(forms.Form):
    count = forms.IntegerField(label="Nodes", min_value=0, max_value=1000)


def resize_service() -> Callable[..., Any] | None:
    """``clusters.services.resize`` once the BatchCompute work ships it; None hides the form."""
    try:
        from clusters import services
    except ImportError:
        return None
    return getattr(services, "resize", None)


def can_resize(request: HttpRequest) -> bool:
    # Clusters are shared by every project, so resizing is for who may change clusters.
    return resize_service() is not None and request.user.has_perm("clusters.change_cluster")


@require_safe
def cluster_list(request: HttpRequest) -> HttpResponse:
    context = {"clusters": queries.clusters_with_nodes()}
    template = "clusters/_clusters.html" if is_htmx(request) else "clusters/list.html"
    return render(request, template, context)


@require_safe
def cluster_detail(request: HttpRequest, pk: int) -> HttpResponse:
    cluster = queries.get_cluster(pk)
    context = _detail_context(
        request, cluster, ResizeForm(initial={"count": cluster.desired_nodes})
    )
    template = "clusters/_nodes.html" if is_htmx(request) else "clusters/detail.html"
    return render(request, template, context)


@require_POST
def resize(request: HttpRequest, pk: int) -> HttpResponse:
    cluster = queries.get_cluster(pk)
    service = resize_service()
    if service is None or not can_resize(request):
        return HttpResponseForbidden("You may not resize clusters here.")
    form = ResizeForm(request.POST)
    if form.is_valid():
        try:
            service(cluster, form.cleaned_data["count"], user=request.user)
        except (ValidationError, ComputeError) as exc:
            errors = exc.messages if isinstance(exc, ValidationError) else [str(exc)]
            form.add_error("count", errors)
        else:
            messages.success(request, f"Resizing {cluster} to {form.cleaned_data['count']} nodes.")
            return redirect(reverse("clusters:detail", args=[cluster.pk]))
    return render(
        request, "clusters/detail.html", _detail_context(request, cluster, form), status=400
    )


def _detail_context(request: HttpRequest, cluster: Cluster, form: ResizeForm) -> dict[str, Any]:
    return {"cluster": cluster, "form": form if can_resize(request) else None}
