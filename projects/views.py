"""The storage browser's pane and the uploads into it: permission-checked project, one
service call, one template or JSON answer."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from renderhub.htmx import is_htmx

from . import uploads
from .browser import OutsideMappings, browse, software_suffixes
from .models import Project


def _project(request: HttpRequest, pk: int) -> Project:
    return get_object_or_404(Project.objects.visible_to(request.user), pk=pk)


@require_safe
def browser(request: HttpRequest, pk: int) -> HttpResponse:
    """The browser pane (htmx swaps it in place; without JS it is a page of its own)."""
    project = _project(request, pk)
    software, suffixes = software_suffixes(project, request.GET.get("software"))
    try:
        folder = browse(
            project, request.GET.get("path", ""), request.GET.get("marker", ""), suffixes
        )
    except OutsideMappings as exc:
        return HttpResponseBadRequest(str(exc), content_type="text/plain; charset=utf-8")
    folder.in_submit = request.GET.get("in") == "submit"
    template = "projects/_browser.html" if is_htmx(request) else "projects/browser_page.html"
    return render(request, template, {"folder": folder, "software": software})


def _count(value: object) -> int | None:
    """A byte count or offset from request text: ASCII digits, else None."""
    text = str(value if value is not None else "").strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) < 16 else None


def _refused(exc: uploads.UploadRefused) -> JsonResponse:
    return JsonResponse({"error": str(exc), **exc.extra}, status=exc.status)


@require_POST
def upload_start(request: HttpRequest, pk: int) -> JsonResponse:
    """Begin one file's upload: form fields ``folder``, ``path`` (may hold sub-folders) and
    ``size``; the answer says how to send it (in pieces here, or a signed POST to OSS)."""
    project = _project(request, pk)
    size = _count(request.POST.get("size"))
    try:
        answer: dict[str, Any] = uploads.start(
            request.user,
            project,
            request.POST.get("folder", ""),
            request.POST.get("path", ""),
            size if size is not None else -1,
        )
    except uploads.UploadRefused as exc:
        return _refused(exc)
    return JsonResponse(answer)


@require_http_methods(["GET", "PUT", "DELETE"])
def upload_piece(request: HttpRequest, pk: int, token: str) -> HttpResponse:
    """GET: bytes received so far; PUT ?offset=N: the next piece (raw body); DELETE: cancel."""
    project = _project(request, pk)
    try:
        if request.method == "GET":
            return JsonResponse({"offset": uploads.received(request.user, project, token)})
        if request.method == "DELETE":
            uploads.cancel(request.user, project, token)
            return HttpResponse(status=204)
        at = _count(request.GET.get("offset"))
        length = _count(request.META.get("CONTENT_LENGTH"))
        if at is None or length is None:
            raise uploads.UploadRefused("Send the piece's offset and Content-Length.", 411)
        # The body is streamed from the request (request.body would hold it in memory).
        offset = uploads.receive(request.user, project, token, at, request, length)
    except uploads.UploadRefused as exc:
        return _refused(exc)
    return JsonResponse({"offset": offset})


@require_POST
def upload_complete(request: HttpRequest, pk: int, token: str) -> JsonResponse:
    project = _project(request, pk)
    try:
        url = uploads.complete(request.user, project, token)
    except uploads.UploadRefused as exc:
        return _refused(exc)
    return JsonResponse({"file": url})
