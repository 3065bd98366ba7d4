from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest

from . import services
from .models import Project, StorageMapping
from .storage_help import URL_ATTRS, roots_help


def storage_field(formfield: Any, user: Any) -> Any:
    """A storage URL field that is wide enough for URLs and says which roots ``user`` may use."""
    if formfield is not None:
        formfield.widget.attrs.update({**URL_ATTRS, "class": "vTextField storage-url"})
        formfield.help_text = roots_help(user, formfield.help_text)
    return formfield


class StorageMappingFormSet(BaseInlineFormSet):
    user: Any = None

    def clean(self) -> None:
        super().clean()
        for form in self.forms:
            if not form.has_changed() or form.cleaned_data.get("DELETE", False):
                continue
            # A new source, or an existing one made writable, is a new reach into storage.
            source = form.cleaned_data.get("source")
            if source and {"source", "writable"} & set(form.changed_data):
                try:
                    services.check_storage(self.user, source, "The source", self.instance)
                except ValidationError as exc:
                    form.add_error("source", exc)


class StorageMappingInline(admin.TabularInline):
    model = StorageMapping
    formset = StorageMappingFormSet
    extra = 1
    fields = ("source", "destination", "artist_paths", "writable", "lockable")

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        formset = super().get_formset(request, obj, **kwargs)
        return type(formset.__name__, (formset,), {"user": request.user})

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        formfield = super().formfield_for_dbfield(db_field, request, **kwargs)
        return storage_field(formfield, request.user) if db_field.name == "source" else formfield


class ProjectAdminForm(forms.ModelForm):
    user: Any = None

    class Meta:
        model = Project
        fields = "__all__"  # noqa: DJ007 - the admin picks and orders them

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        prefix = data.get("output_prefix")
        if prefix and "output_prefix" in self.changed_data:
            try:
                services.check_storage(self.user, prefix, "The output prefix", self.instance)
            except ValidationError as exc:
                self.add_error("output_prefix", exc)
        if "node_output_dir" in self.changed_data and (image := data.get("image")):
            try:
                services.check_node_output_dir(self.user, image.platform)
            except ValidationError as exc:
                self.add_error("node_output_dir", exc)
        if "members" in self.changed_data and "members" in data:
            before = (
                set(self.instance.members.values_list("pk", flat=True))
                if self.instance.pk
                else set()
            )
            try:
                services.check_members_change(self.user, before, {u.pk for u in data["members"]})
            except ValidationError as exc:
                self.add_error("members", exc)
        return data


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    form = ProjectAdminForm
    list_display = ("name", "image", "output_prefix", "auto_download", "member_count", "created_at")
    list_filter = ("image", "auto_download")
    list_select_related = ("image",)
    search_fields = ("name", "description", "output_prefix")
    filter_horizontal = ("members",)
    inlines = [StorageMappingInline]

    class Media:
        css = {"all": ("css/admin-storage.css",)}

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        formfield = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name == "output_prefix":
            return storage_field(formfield, request.user)
        return formfield

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # A project's name keys settings (CROMWELL_PROJECT_URLS gives a project its own
        # Cromwell server and call cache): renaming into another's entry would take it.
        fields = tuple(super().get_readonly_fields(request, obj))
        if obj is not None and not request.user.is_superuser:
            fields += ("name",)
        return fields

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        form = super().get_form(request, obj, change, **kwargs)
        return type(form.__name__, (form,), {"user": request.user})

    def get_queryset(self, request: HttpRequest) -> QuerySet[Project]:
        from django.db.models import Count

        qs = super().get_queryset(request).annotate(member_total=Count("members", distinct=True))
        return qs.visible_to(request.user)

    @admin.display(description="Members", ordering="member_total")
    def member_count(self, obj: Project) -> int:
        return obj.member_total  # type: ignore[attr-defined]
