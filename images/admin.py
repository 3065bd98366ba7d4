from __future__ import annotations

from django.contrib import admin

from .models import ComputeImage, Software


class SoftwareInline(admin.StackedInline):
    model = Software
    extra = 0
    fields = (
        "name",
        "version",
        "scene_suffixes",
        "command_template",
        "parameters",
        "progress_parser",
        "network",
    )


@admin.register(ComputeImage)
class ComputeImageAdmin(admin.ModelAdmin):
    list_display = ("name", "image_id", "platform", "software_list", "created_at")
    list_filter = ("platform",)
    search_fields = ("name", "image_id", "description")
    inlines = [SoftwareInline]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("software")

    @admin.display(description="Software")
    def software_list(self, obj: ComputeImage) -> str:
        return ", ".join(str(s) for s in obj.software.all()) or "-"


@admin.register(Software)
class SoftwareAdmin(admin.ModelAdmin):
    list_display = ("name", "version", "image", "scene_suffixes", "progress_parser")
    list_filter = ("image", "progress_parser")
    list_select_related = ("image",)
    search_fields = ("name", "version")
    readonly_fields = ("template_help",)
    fields = (
        "image",
        "name",
        "version",
        "scene_suffixes",
        "command_template",
        "template_help",
        "parameters",
        "progress_parser",
        "network",
    )

    @admin.display(description="Template variables")
    def template_help(self, obj: Software | None) -> str:
        from django.utils.html import format_html_join

        from renderhub.agent.template import TEMPLATE_VARIABLES

        return format_html_join(
            "", "<div><code>{{{}}}</code> {}</div>", sorted(TEMPLATE_VARIABLES.items())
        )
