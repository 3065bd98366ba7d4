from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from . import catalogue
from .forms import SOFTWARE_FIELDS, SoftwareForm
from .models import ComputeImage, Software


class SoftwareInline(admin.StackedInline):
    model = Software
    form = SoftwareForm
    extra = 0
    fields = SOFTWARE_FIELDS

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        formset = super().get_formset(request, obj, **kwargs)
        formset.form = type(formset.form.__name__, (formset.form,), {"user": request.user})
        return formset


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
        return ", ".join(f"{s.name} {s.version}".strip() for s in obj.software.all()) or "-"


@admin.register(Software)
class SoftwareAdmin(admin.ModelAdmin):
    form = SoftwareForm

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kw: Any
    ) -> Any:
        form = super().get_form(request, obj, change, **kw)
        return type(form.__name__, (form,), {"user": request.user})

    list_display = ("name", "version", "image", "scene_suffixes", "progress_parser")
    list_filter = ("image", "progress_parser")
    list_select_related = ("image",)
    search_fields = ("name", "version")
    fields = ("image", *SOFTWARE_FIELDS)

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        """?template=<key> prefills the add form from the catalogue."""
        initial = super().get_changeform_initial_data(request)
        initial.pop("template", None)
        if template := catalogue.get(request.GET.get("template")):
            initial.update(template.initial(set(Software.objects.values_list("name", flat=True))))
        return initial

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> Any:
        extra = {
            "catalogue": catalogue.CATALOGUE,
            "chosen_template": catalogue.get(request.GET.get("template")),
            **(extra_context or {}),
        }
        return super().add_view(request, form_url, extra)
