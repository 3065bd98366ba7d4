from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from .models import Project, StorageMapping


class StorageMappingInline(admin.TabularInline):
    model = StorageMapping
    extra = 1
    fields = ("source", "destination", "writable", "lockable")


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ("name", "image", "output_prefix", "auto_download", "member_count", "created_at")
    list_filter = ("image", "auto_download")
    list_select_related = ("image",)
    search_fields = ("name", "description", "output_prefix")
    filter_horizontal = ("members",)
    inlines = [StorageMappingInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Project]:
        from django.db.models import Count

        qs = super().get_queryset(request).annotate(member_total=Count("members", distinct=True))
        return qs.visible_to(request.user)  # type: ignore[attr-defined]

    @admin.display(description="Members", ordering="member_total")
    def member_count(self, obj: Project) -> int:
        return obj.member_total  # type: ignore[attr-defined]
