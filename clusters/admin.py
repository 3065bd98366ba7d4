from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.html import format_html, format_html_join

from renderhub.admin_actions import ExplainRefusedActionsMixin
from renderhub.compute import ComputeError
from renderhub.outcome import add_messages

from . import services
from .choices import Backend, ClusterState
from .forms import ClusterAdminForm, ResizeForm
from .models import Cluster, ClusterNode, ClusterOperation


class ClusterNodeInline(admin.TabularInline):
    model = ClusterNode
    extra = 0
    can_delete = False
    fields = (
        "name",
        "state",
        "cloud_state",
        "ip_address",
        "cpu_percent",
        "memory_percent",
        "launched_at",
        "last_seen",
        "error",
    )
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Cluster | None = None) -> bool:
        return False


def _nodes_wording(cluster: Cluster | None) -> tuple[str, str]:
    """The node count means machines only for a standing BatchCompute cluster."""
    if cluster is None:
        return "Nodes", (
            "BatchCompute: VMs to run (0 keeps the cluster but stops paying for VMs). Own "
            "machines: how many nodes a job is split over by default; machines join by "
            "running a render worker for the cluster's queue."
        )
    if services.is_cloud(cluster):
        return "Nodes", "VMs to run; 0 keeps the cluster but stops paying for VMs."
    if cluster.backend == Backend.BATCHCOMPUTE:
        return "VMs per job", "AutoCluster: the most VMs one job gets."
    return "Nodes per job", (
        "How many nodes a job is split over by default. RenderHub does not start or stop "
        f"your own machines: a machine joins by running a render worker for {cluster.queue}."
    )


@admin.register(Cluster)
class ClusterAdmin(ExplainRefusedActionsMixin, admin.ModelAdmin):
    form = ClusterAdminForm
    list_display = (
        "name",
        "backend",
        "image",
        "state",
        "suspended_at",
        "desired_nodes",
        "actual_nodes",
        "max_nodes",
        "queue",
    )
    list_filter = ("backend", "state", "image")
    list_select_related = ("image",)
    search_fields = ("name", "cloud_cluster_id")
    readonly_fields = (
        "queue",
        "node_user",
        "cloud_cluster_id",
        "actual_nodes",
        "synced_at",
        "sync_error",
        "operation_log",
        "created_at",
        "updated_at",
    )
    inlines = [ClusterNodeInline]
    actions = [
        "sync_clusters",
        "resize_clusters",
        "suspend_clusters",
        "resume_clusters",
        "delete_clusters",
    ]

    class Media:
        js = ["js/cluster-form.js"]  # hides the BatchCompute fields for own machines

    # BatchCompute clusters are created, resized and deleted through clusters.services.

    @admin.display(description="Node user")
    def node_user(self, obj: Cluster) -> str:
        if obj.backend != Backend.CELERY:
            return "-"
        if obj.broker_user:
            return f"{obj.broker_user} (its queue is under {obj.broker_prefix})"
        return (
            "none: its nodes share the manager's broker credential "
            f"(manage.py node_user {obj.name} gives them their own)"
        )

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        general = ["name", "backend", "image", "desired_nodes", "max_nodes", "hourly_price"]
        fieldsets: list[tuple[str | None, dict[str, Any]]] = [
            (None, {"fields": general + ([] if obj is None else ["state", "queue", "node_user"])})
        ]
        if obj is None or obj.backend == Backend.BATCHCOMPUTE:
            cloud = ["auto_cluster", "instance_type", "disk_type", "disk_size_gb", "spot"]
            cloud += ["spot_price_limit"]
            if obj is not None:
                cloud += ["cloud_cluster_id", "actual_nodes", "synced_at", "sync_error"]
            fieldsets.append(
                (
                    "Alibaba Cloud BatchCompute",
                    {
                        "fields": cloud,
                        "classes": ["batchcompute"],
                        "description": "Only for BatchCompute clusters.",
                    },
                )
            )
        if obj is not None:
            fieldsets.append(("History", {"fields": ["operation_log", "created_at", "updated_at"]}))
        return fieldsets

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kw: Any
    ) -> Any:
        form = super().get_form(request, obj, change, **kw)
        if (nodes := form.base_fields.get("desired_nodes")) is not None:
            nodes.label, nodes.help_text = _nodes_wording(obj)
        return form

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = tuple(super().get_readonly_fields(request, obj))
        if obj is not None:
            fields += ("state",)  # follows what happens to the cluster; never typed in
        if obj is not None and services.is_cloud(obj) and obj.cloud_cluster_id:
            # What the cloud cluster was created with; resizing goes through desired nodes.
            fields += ("backend", "auto_cluster", "image", "instance_type", "disk_type")
            fields += ("disk_size_gb", "spot", "spot_price_limit")
        return fields

    def save_model(self, request: HttpRequest, obj: Cluster, form: Any, change: bool) -> None:
        try:
            if not change:
                services.create(obj, user=request.user)  # type: ignore[arg-type]
                return
            resize_to = None
            if "desired_nodes" in form.changed_data and services.is_cloud(obj):
                resize_to, obj.desired_nodes = obj.desired_nodes, form.initial["desired_nodes"]
            super().save_model(request, obj, form, change)
            if resize_to is not None:
                services.resize(obj, resize_to, user=request.user)  # type: ignore[arg-type]
        except ComputeError as exc:
            self.message_user(request, f"BatchCompute: {exc}", messages.ERROR)
        except ValidationError as exc:
            self.message_user(request, " ".join(exc.messages), messages.ERROR)

    def delete_model(self, request: HttpRequest, obj: Cluster) -> None:
        self.delete_queryset(request, Cluster.objects.filter(pk=obj.pk))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Cluster]) -> None:
        # A row must not go while its cloud cluster lives on (and costs money).
        for cluster in queryset:
            if services.is_cloud(cluster) and cluster.state != ClusterState.DELETED:
                try:
                    services.delete(cluster, user=request.user)  # type: ignore[arg-type]
                except ComputeError as exc:
                    self.message_user(request, f"{cluster}: {exc}", messages.ERROR)
                    continue
            cluster.delete()

    @admin.display(description="Operation log (newest first)")
    def operation_log(self, obj: Cluster) -> str:
        operations = list(obj.operations.select_related("user")[:50]) if obj.pk else []
        if not operations:
            return "-"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((f"{op.at:%Y-%m-%d %H:%M:%S}", op.user or op.source, op.message) for op in operations),
        )
        return format_html("<table>{}</table>", rows)

    @admin.action(description="Sync selected clusters with BatchCompute", permissions=["change"])
    def sync_clusters(self, request: HttpRequest, queryset: QuerySet[Cluster]) -> None:
        for cluster in queryset.select_related("image"):
            try:
                services.sync(cluster)
            except ComputeError as exc:
                self.message_user(request, f"{cluster}: {exc}", messages.ERROR)
        self.message_user(request, "Synced.")

    @admin.action(description="Resize selected clusters…", permissions=["change"])
    def resize_clusters(
        self, request: HttpRequest, queryset: QuerySet[Cluster]
    ) -> HttpResponse | None:
        form = ResizeForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            for cluster in queryset.select_related("image"):
                try:
                    services.resize(cluster, form.cleaned_data["nodes"], user=request.user)  # type: ignore[arg-type]
                    self.message_user(request, services.resize_message(cluster))
                except ComputeError as exc:
                    self.message_user(request, f"{cluster}: {exc}", messages.ERROR)
                except ValidationError as exc:
                    self.message_user(
                        request, f"{cluster}: {' '.join(exc.messages)}", messages.ERROR
                    )
            return None
        return TemplateResponse(
            request,
            "admin/clusters/cluster/resize.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": "Resize clusters",
                "clusters": list(queryset),
                "form": form,
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            },
        )

    @admin.action(
        description="Suspend selected clusters (their nodes take no new chunks)",
        permissions=["change"],
    )
    def suspend_clusters(self, request: HttpRequest, queryset: QuerySet[Cluster]) -> None:
        for cluster in queryset:
            add_messages(request, services.suspend(cluster, user=request.user))  # type: ignore[arg-type]

    @admin.action(description="Resume selected suspended clusters", permissions=["change"])
    def resume_clusters(self, request: HttpRequest, queryset: QuerySet[Cluster]) -> None:
        for cluster in queryset:
            add_messages(request, services.resume(cluster, user=request.user))  # type: ignore[arg-type]

    @admin.action(
        description="Delete selected clusters (in BatchCompute too), keeping records",
        permissions=["delete"],
    )
    def delete_clusters(self, request: HttpRequest, queryset: QuerySet[Cluster]) -> None:
        for cluster in queryset.select_related("image"):
            try:
                services.delete(cluster, user=request.user)  # type: ignore[arg-type]
                self.message_user(request, f"{cluster}: {cluster.state}.")
            except ComputeError as exc:
                self.message_user(request, f"{cluster}: {exc}", messages.ERROR)


@admin.register(ClusterNode)
class ClusterNodeAdmin(admin.ModelAdmin):
    list_display = ("name", "cluster", "state", "cpu_percent", "memory_percent", "last_seen")
    list_filter = ("cluster", "state")
    list_select_related = ("cluster",)
    search_fields = ("name", "ip_address")
    readonly_fields = ("created_at", "last_seen")


@admin.register(ClusterOperation)
class ClusterOperationAdmin(admin.ModelAdmin):
    list_display = ("at", "cluster", "source", "action", "user", "message")
    list_filter = ("source", "action", "cluster")
    list_select_related = ("cluster", "user")
    search_fields = ("message",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
