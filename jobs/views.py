"""Staff pages for render jobs: dashboard, submit, lists, detail, logs and outputs.

Thin views: a permission-checked getter from ``jobs.queries`` (404 for what the user may
not see), at most one service call, then a redirect or a render. Partials for htmx
polling are the same views answering an ``HX-Request`` with a fragment.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    StreamingHttpResponse,
)
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe

from clusters.models import Cluster
from images.models import Software
from projects.browser import Folder, OutsideMappings, browse, scene_labels
from projects.models import Project
from renderhub import storage
from renderhub.cli import parse_id
from renderhub.htmx import is_htmx, not_modified, tag
from renderhub.outcome import add_messages

from . import live, movies, nodes, pages, queries, services
from .forms import SubmitRenderPageForm
from .framespec import FrameSpecError, parse_frame_spec
from .models import Task
from .outputs import signed_link


def _job_url(pk: int) -> str:
    return reverse("jobs:detail", args=[pk])


# --- dashboard and lists --------------------------------------------------------------------


@require_safe
def running_jobs(request: HttpRequest) -> HttpResponse:
    if is_htmx(request):  # the table's poll: 304 while the listed jobs have not moved
        jobs = queries.list_jobs(request.user, request.GET, finished=False)
        etag = live.jobs_version(request.user, jobs, "running")
        if unchanged := not_modified(request, etag):
            return unchanged
        context = queries.job_list(request.user, request.GET, finished=False)
        context["etag"] = etag
        return tag(render(request, "jobs/_job_table.html", context), etag)
    context = queries.job_list(request.user, request.GET, finished=False)
    return render(request, "jobs/job_list.html", context)


@require_safe
def finished_jobs(request: HttpRequest) -> HttpResponse:
    context = queries.job_list(request.user, request.GET, finished=True)
    return render(request, "jobs/job_list.html", context)


# --- submit -----------------------------------------------------------------------------------


def _project(request: HttpRequest) -> Project | None:
    """The project named in POST or GET; None when absent, 404 when unknown or not visible."""
    raw = request.POST.get("project") or request.GET.get("project")
    if not raw:
        return None
    pk = parse_id(raw)
    return get_object_or_404(Project.objects.visible_to(request.user), pk=pk or 0)


def _software(request: HttpRequest, project: Project) -> Software | None:
    """The software of ?software= (a posted one is the form's to validate)."""
    pk = parse_id(request.GET.get("software"))
    return get_object_or_404(Software, pk=pk, image_id=project.image_id) if pk else None


def submit(request: HttpRequest) -> HttpResponse:
    project = _project(request)
    projects = Project.objects.visible_to(request.user)
    if project is None:
        return render(request, "jobs/submit.html", {"projects": projects, "project": None})
    form = SubmitRenderPageForm(
        request.POST or None,
        user=request.user,
        project=project,
        software=_software(request, project),
    )
    if request.method == "POST" and form.is_valid() and (jobs := form.submit()):
        messages.success(request, f"Submitted {', '.join(f'#{j.pk}' for j in jobs)}.")
        for warning in form.warnings:  # shown on the page the submitter lands on
            messages.warning(request, warning)
        if len(jobs) == 1:
            return redirect(_job_url(jobs[0].pk))
        return redirect(f"{reverse('jobs:running')}?project={project.pk}")
    context = {
        "projects": projects,
        "project": project,
        "form": form,
        "software": form.chosen_software,
        "folder": _folder(request, project, form.chosen_software),
        "selected": scene_labels(project, form["scenes"].value() or []),
    }
    context["estimate"], context["frames_error"] = _estimate(request, project, form.chosen_software)
    template = "jobs/_software_fields.html" if is_htmx(request) else "jobs/submit.html"
    return render(request, template, context)


def _folder(request: HttpRequest, project: Project, software: Software | None) -> Folder:
    """The browser pane at ?path= (the mapped folders when it is missing or outside them)."""
    suffixes = software.suffixes if software else []
    try:
        return browse(project, request.GET.get("path", ""), request.GET.get("marker", ""), suffixes)
    except OutsideMappings:
        return browse(project, "", "", suffixes)


def _number(request: HttpRequest, name: str) -> int | None:
    return parse_id(request.POST.get(name) or request.GET.get(name))


def _estimate(
    request: HttpRequest, project: Project, software: Software | None
) -> tuple[queries.Estimate | None, str]:
    """The estimate, or none and what is wrong with the typed frames (empty: none typed)."""
    data = request.POST or request.GET
    spec = data.get("frames", "")
    try:
        frames = len(parse_frame_spec(spec))
    except FrameSpecError as exc:
        return None, str(exc) if spec.strip() else ""
    cluster_id = parse_id(data.get("cluster"))
    cluster = (
        Cluster.objects.filter(pk=cluster_id, image_id=project.image_id).first()
        if cluster_id
        else None
    )
    estimate = queries.estimate(
        project,
        software.pk if software else None,
        cluster,
        frames,
        # Each scene's own history comes first; only this project's jobs are looked at.
        [url[:1024] for url in data.getlist("scenes")[:200]],
        _number(request, "nodes"),
        _number(request, "chunk_size"),
    )
    return estimate, ""


@require_safe
def submit_estimate(request: HttpRequest) -> HttpResponse:
    project = _project(request)
    if project is None:
        raise Http404
    estimate, frames_error = _estimate(request, project, _software(request, project))
    context = {"estimate": estimate, "frames_error": frames_error}
    # 200 even for bad frames: htmx swaps only 2xx answers, and the message is the answer.
    return render(request, "jobs/_estimate.html", context)


# --- one job -----------------------------------------------------------------------------------


@require_safe
def node_detail(request: HttpRequest, pk: int, node: str) -> HttpResponse:
    """A cluster's node: who may see the cluster sees the node; its chunks are filtered."""
    found = nodes.get_node(pk, node)
    context = nodes.node_page(request.user, found, request.GET.get("page"))
    return render(request, "clusters/node.html", context)


@require_safe
def job_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """The job page; its poll answers 304 while the job's version holds (``jobs.live``)
    and otherwise carries only the grid cells that changed since the poller's version."""
    etag = live.job_version(request.user, pk)
    if etag is None:
        raise Http404("No such job.")
    if is_htmx(request):
        etag, fresh = live.coalesce(pk, etag)
        if unchanged := not_modified(request, etag):
            return unchanged
        response = tag(HttpResponse(live.job_partial(request, pk, etag)), etag)
        if fresh:
            live.publish(pk, etag)
        return response
    job = queries.get_job(request.user, pk)
    context = queries.job_detail(job, request.GET.get("chunks"), live.frame_summary(job, etag))
    context["etag"] = etag
    context["grid_states"] = states = live.grid_states(job, etag)
    context["grid_numbers"] = live.grid_frames(job, len(states))
    return render(request, "jobs/job_detail.html", context)


@require_POST
def cancel(request: HttpRequest, pk: int) -> HttpResponse:
    job = queries.get_job(request.user, pk)
    add_messages(request, services.cancel_job(job, cascade=bool(request.POST.get("cascade"))))
    return redirect(_job_url(job.pk))


@require_POST
def retry(request: HttpRequest, pk: int) -> HttpResponse:
    job = queries.get_job(request.user, pk)
    chunks = services.retry_job(job)
    if chunks:
        messages.success(request, f"Queued {chunks} failed or cancelled chunks again.")
    else:
        messages.info(request, "Nothing to retry: the job is still running or every chunk is done.")
    return redirect(_job_url(job.pk))


@require_safe
def movie(request: HttpRequest, pk: int) -> HttpResponse:
    """The job's preview movie, if one was asked for: a player once it is made."""
    job = queries.get_job(request.user, pk)
    return render(request, "jobs/_movie.html", {"preview": movies.preview_of(job)})


@require_POST
def pause(request: HttpRequest, pk: int) -> HttpResponse:
    job = queries.get_job(request.user, pk)
    add_messages(request, services.pause_job(job, now=bool(request.POST.get("now"))))
    return redirect(_job_url(job.pk))


@require_POST
def resume(request: HttpRequest, pk: int) -> HttpResponse:
    job = queries.get_job(request.user, pk)
    add_messages(request, services.resume_job(job))
    return redirect(_job_url(job.pk))


@require_POST
def requeue(request: HttpRequest, pk: int) -> HttpResponse:
    job = queries.get_job(request.user, pk)
    chunks = services.requeue_job(job)
    messages.success(request, f"Requeued {chunks} queued or running chunks.")
    return redirect(_job_url(job.pk))


@require_POST
def requeue_chunk(request: HttpRequest, pk: int, index: int) -> HttpResponse:
    task = queries.get_task(request.user, pk, index)
    if services.requeue_task(task, reason=f"requeued by {request.user} on the job page"):
        messages.success(request, f"Requeued chunk {index}.")
    else:
        messages.info(request, f"Chunk {index} is not queued or running; nothing to requeue.")
    return redirect(_job_url(pk))


# --- frames --------------------------------------------------------------------------------------


@require_safe
def frame_info(request: HttpRequest, pk: int, number: int) -> HttpResponse:
    frame = queries.get_frame(request.user, pk, number)
    download = _signed(frame.output_url) if frame.output_url else ""
    return render(request, "jobs/_frame.html", {"frame": frame, "download": download})


@require_safe
def frame_thumbnail(request: HttpRequest, pk: int, number: int) -> HttpResponse:
    frame = queries.get_frame(request.user, pk, number)
    if not frame.thumbnail_url:
        raise Http404("This frame has no thumbnail.")
    try:
        return pages.thumbnail(frame)
    except storage.StorageError:
        raise Http404("The thumbnail is gone from storage.") from None


@require_safe
def frame_preview(request: HttpRequest, pk: int, number: int) -> HttpResponse:
    frame = queries.get_frame(request.user, pk, number)
    if not frame.thumbnail_url and not frame.output_url:
        raise Http404("This frame has no image yet.")
    try:
        return pages.preview(frame)
    except storage.StorageError:
        raise Http404("The image is gone from storage.") from None


def _signed(url: str) -> str:
    try:
        return signed_link(url)
    except storage.StorageError:
        return ""


# --- logs and outputs -----------------------------------------------------------------------------


def _which_log(request: HttpRequest) -> str | None:
    which = request.GET.get("log", "stdout")
    return which if which in pages.LOGS else None


def _log_choice(request: HttpRequest, task: Task) -> pages.LogChoice:
    """The attempt named by ?attempt=N (the latest without it); 404 for one it never had."""
    raw = request.GET.get("attempt")
    number = parse_id(raw) if raw else None
    if raw and number is None:
        raise Http404("Attempts are numbered 1, 2, …")
    choice = pages.choose_log(task, number)
    if choice is None:
        raise Http404(f"Chunk {task.index} has no attempt {raw}.")
    return choice


@require_safe
def task_logs(request: HttpRequest, pk: int, index: int) -> HttpResponse:
    etag = live.task_version(request.user, pk, index) if is_htmx(request) else None
    if etag and (unchanged := not_modified(request, etag)):
        return unchanged  # the live tail's poll: 304 until the chunk's row moves
    task = queries.get_task(request.user, pk, index)
    which = _which_log(request)
    if which is None:
        return HttpResponseBadRequest("Unknown log; choose agent, stdout or stderr.")
    choice = _log_choice(request, task)
    context = {
        "task": task,
        "job": task.job,
        "which": which,
        "logs": list(pages.LOGS),
        "choice": choice,
        "attempt": choice.attempt,
        "log": pages.read_log(choice.source, which, choice.live),
        "live": choice.live,
        "etag": etag,
    }
    if not is_htmx(request):
        return render(request, "jobs/logs.html", context)
    return tag(render(request, "jobs/_log.html", context), etag or "")


@require_safe
def task_log_download(request: HttpRequest, pk: int, index: int, which: str) -> HttpResponseBase:
    task = queries.get_task(request.user, pk, index)
    if which not in pages.LOGS:
        raise Http404
    return pages.log_download(task, which, _log_choice(request, task))


@require_safe
def outputs(request: HttpRequest, pk: int) -> HttpResponse:
    job = queries.get_job(request.user, pk)
    page = queries.gallery_page(job, request.GET.get("page"))
    frames = [(frame, _signed(frame.output_url)) for frame in page.object_list]
    return render(request, "jobs/outputs.html", {"job": job, "page": page, "frames": frames})


@require_safe
def outputs_zip(request: HttpRequest, pk: int) -> StreamingHttpResponse:
    job = queries.get_job(request.user, pk)
    return pages.zip_response(job)
