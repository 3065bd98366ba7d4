"""The submit page's dependency panel: the files the ticked scenes need, with their state
(an htmx fragment, refreshed as scenes are ticked)."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_safe

from projects.models import Project
from renderhub.cli import parse_id

from .dependencies import check_scene_files

MAX_SCENES = 20  # the panel reads each scene (and its libraries): a bounded number


@require_safe
def submit_dependencies(request: HttpRequest) -> HttpResponse:
    pk = parse_id(request.GET.get("project"))
    if pk is None:
        raise Http404
    project = get_object_or_404(Project.objects.visible_to(request.user), pk=pk)
    scenes = list(dict.fromkeys(s for s in request.GET.getlist("scenes") if s.strip()))
    context: dict[str, object] = {"reports": [], "error": ""}
    if len(scenes) > MAX_SCENES:
        context["error"] = f"Tick at most {MAX_SCENES} scenes to see what they need."
    else:
        try:
            context["reports"] = check_scene_files(project, scenes)
        except ValueError as exc:
            context["error"] = str(exc)
    # 200 even for a refusal: htmx swaps only 2xx answers, and the message is the answer.
    return render(request, "jobs/_dependencies.html", context)
