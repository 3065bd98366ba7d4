"""Cluster pages: nodes and their heartbeats, and a resize form for who may change clusters."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe

from renderhub.compute import ComputeError
from renderhub.htmx import is_htmx, not_modified, tag
from renderhub.outcome import add_messages

from . import queries, services
from .models import Cluster


class ResizeForm(forms.Form):
    count = forms.IntegerField(label="Nodes", min_value=0, max_value=1000)


def can_resize(request: HttpRequest) -> bool:
    # Clusters are shared by every project, so resizing is for who may change clusters.
    return request.user.has_perm("clusters.change_cluster")


@require_safe
def cluster_list(request: HttpRequest) -> HttpResponse:
    if is_htmx(request):  # the list's poll: 304 while no cluster or node has moved
        etag = queries.clusters_version()
        if unchanged := not_modified(request, etag):
            return unchanged
        context = {"clusters": queries.clusters_with_nodes(), "etag": etag}
        return tag(render(request, "clusters/_clusters.html", context), etag)
    context = {"clusters": queries.clusters_with_nodes()}
    return render(request, "clusters/list.html", context)


@require_safe
def cluster_detail(request: HttpRequest, pk: int) -> HttpResponse:
    etag = queries.clusters_version(pk) if is_htmx(request) else ""
    if etag and (unchanged := not_modified(request, etag)):
        return unchanged  # the nodes panel's poll, while the cluster and its nodes hold
    cluster = queries.get_cluster(pk)
    context = _detail_context(
        request, cluster, ResizeForm(initial={"count": cluster.desired_nodes})
    )
    if etag:
        return tag(render(request, "clusters/_nodes.html", context | {"etag": etag}), etag)
    return render(request, "clusters/detail.html", context)


@require_POST
def resize(request: HttpRequest, pk: int) -> HttpResponse:
    cluster = queries.get_cluster(pk)
    if not can_resize(request):
        return HttpResponseForbidden("You may not resize clusters here.")
    form = ResizeForm(request.POST)
    if form.is_valid():
        try:
            services.resize(cluster, form.cleaned_data["count"], user=request.user)  # type: ignore[arg-type]
        except (ValidationError, ComputeError) as exc:
            errors = exc.messages if isinstance(exc, ValidationError) else [str(exc)]
            form.add_error("count", errors)
        else:
            messages.success(request, services.resize_message(cluster))
            return redirect(reverse("clusters:detail", args=[cluster.pk]))
    return render(
        request, "clusters/detail.html", _detail_context(request, cluster, form), status=400
    )


@require_POST
def suspend(request: HttpRequest, pk: int) -> HttpResponse:
    cluster = queries.get_cluster(pk)
    if not can_resize(request):
        return HttpResponseForbidden("You may not suspend clusters here.")
    if request.POST.get("resume"):
        add_messages(request, services.resume(cluster, user=request.user))  # type: ignore[arg-type]
    else:
        add_messages(request, services.suspend(cluster, user=request.user))  # type: ignore[arg-type]
    return redirect(reverse("clusters:detail", args=[cluster.pk]))


def _detail_context(request: HttpRequest, cluster: Cluster, form: ResizeForm) -> dict[str, Any]:
    return {"cluster": cluster, "form": form if can_resize(request) else None}
