from __future__ import annotations

from django.contrib import admin

from .models import Cluster, ClusterNode


class ClusterNodeInline(admin.TabularInline):
    model = ClusterNode
    extra = 0
    can_delete = False
    fields = ("name", "state", "ip_address", "cpu_percent", "memory_percent", "last_seen", "error")
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


@admin.register(Cluster)
class ClusterAdmin(admin.ModelAdmin):
    list_display = ("name", "backend", "image", "state", "desired_nodes", "max_nodes", "queue")
    list_filter = ("backend", "state", "image")
    list_select_related = ("image",)
    search_fields = ("name", "cloud_cluster_id")
    readonly_fields = ("queue", "cloud_cluster_id", "created_at", "updated_at")
    inlines = [ClusterNodeInline]


@admin.register(ClusterNode)
class ClusterNodeAdmin(admin.ModelAdmin):
    list_display = ("name", "cluster", "state", "cpu_percent", "memory_percent", "last_seen")
    list_filter = ("cluster", "state")
    list_select_related = ("cluster",)
    search_fields = ("name", "ip_address")
    readonly_fields = ("created_at", "last_seen")
