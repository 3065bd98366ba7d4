"""The New project page, for users who may add projects (the admin is for staff)."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.views.decorators.http import require_http_methods

from images.models import ComputeImage

from . import creation
from .models import Project


class NewProjectForm(forms.Form):
    name = forms.SlugField(
        max_length=60,
        help_text="Letters, digits, '-' and '_'; it names the project's folder too.",
    )
    image = forms.ModelChoiceField(
        queryset=ComputeImage.objects.all(),
        help_text="The node image its jobs render on (and so the software they can use).",
    )
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)


@require_http_methods(["GET", "POST"])
def new_project(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm(creation.ADD_PERMISSION):
        raise PermissionDenied("Creating projects needs the “Can add project” permission.")
    images = ComputeImage.objects.all()
    form = NewProjectForm(request.POST or None, initial={"image": images.first()})
    if request.method == "POST" and form.is_valid():
        try:
            project = creation.create_project(
                request.user,  # type: ignore[arg-type]
                form.cleaned_data["name"],
                form.cleaned_data["image"],
                form.cleaned_data["description"],
            )
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            messages.success(
                request,
                f"Project {project} created. Upload scenes into scenes/ here, then submit.",
            )
            return redirect(reverse("projects:browse", args=[project.pk]))
    context = {
        "form": form,
        "root": creation.projects_root(),
        "projects": Project.objects.visible_to(request.user),
    }
    return render(request, "projects/new.html", context, status=400 if form.errors else 200)


urlpatterns = [path("new/", new_project, name="project-new")]
