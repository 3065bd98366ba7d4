"""The storage browser's pane: a permission-checked project, one listing, one template."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_safe

from renderhub.htmx import is_htmx

from .browser import OutsideMappings, browse, software_suffixes
from .models import Project


@require_safe
def browser(request: HttpRequest, pk: int) -> HttpResponse:
    """The browser pane (htmx swaps it in place; without JS it is a page of its own)."""
    project = get_object_or_404(Project.objects.visible_to(request.user), pk=pk)
    software, suffixes = software_suffixes(project, request.GET.get("software"))
    try:
        folder = browse(
            project, request.GET.get("path", ""), request.GET.get("marker", ""), suffixes
        )
    except OutsideMappings as exc:
        return HttpResponseBadRequest(str(exc), content_type="text/plain; charset=utf-8")
    template = "projects/_browser.html" if is_htmx(request) else "projects/browser_page.html"
    return render(request, template, {"folder": folder, "software": software})
