"""Staff pages for software: a list, "new from a template" and edit, with the admin's form.

For users holding the model permissions images.add_software / images.change_software
(a project lead need not be staff); anyone else gets 403.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse

from renderhub.cli import parse_id

from . import catalogue
from .forms import SoftwareForm
from .models import ComputeImage, Software

ADD = "images.add_software"
CHANGE = "images.change_software"


@login_required
def software_list(request: HttpRequest) -> HttpResponse:
    if not (request.user.has_perm(ADD) or request.user.has_perm(CHANGE)):
        raise PermissionDenied("You may not add or change software.")
    images = ComputeImage.objects.prefetch_related("software").order_by("name")
    return render(
        request, "images/software_list.html", {"images": images, "catalogue": catalogue.CATALOGUE}
    )


@login_required
@permission_required(ADD, raise_exception=True)
def software_new(request: HttpRequest) -> HttpResponse:
    template = catalogue.get(request.GET.get("template"))
    taken = set(Software.objects.values_list("name", flat=True))
    initial = template.initial(taken) if template else {}
    if image_id := parse_id(request.GET.get("image")):
        initial["image"] = image_id
    form = SoftwareForm(request.POST or None, initial=initial)
    form.user = request.user
    if request.method == "POST" and form.is_valid():
        software = form.save()
        messages.success(request, f"Added {software}.")
        return redirect(reverse("images:software-list"))
    context = {"form": form, "template": template, "catalogue": catalogue.CATALOGUE}
    return render(request, "images/software_form.html", context)


@login_required
@permission_required(CHANGE, raise_exception=True)
def software_edit(request: HttpRequest, pk: int) -> HttpResponse:
    software = get_object_or_404(Software.objects.select_related("image"), pk=pk)
    form = SoftwareForm(request.POST or None, instance=software)
    form.user = request.user
    if request.method == "POST" and form.is_valid():
        software = form.save()
        messages.success(request, f"Saved {software}.")
        return redirect(reverse("images:software-list"))
    return render(request, "images/software_form.html", {"form": form, "software": software})
