"""Staff pages for workflow runs: list, detail (calls and a timeline), logs, outputs.

Thin views: a permission-checked getter (404 for runs of projects the user is not a
member of), at most one service call, then a redirect or a render.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST, require_safe

from projects.models import Project
from renderhub.cli import parse_id

from . import access, services
from .choices import RunState
from .engines import EngineError
from .models import Call, WorkflowRun

LIST_LIMIT = 100


def _get_run(request: HttpRequest, pk: int) -> WorkflowRun:
    runs = WorkflowRun.objects.visible_to(request.user).select_related("project", "submitted_by")
    return get_object_or_404(runs, pk=pk)


@require_safe
def run_list(request: HttpRequest) -> HttpResponse:
    runs = WorkflowRun.objects.visible_to(request.user).select_related("project")
    state = request.GET.get("state", "")
    if state in RunState.values:
        runs = runs.filter(state=state)
    projects = Project.objects.visible_to(request.user)
    project = request.GET.get("project", "")
    if (project_id := parse_id(project)) is not None:
        runs = runs.filter(project_id=project_id)
    context = {
        "runs": list(runs[:LIST_LIMIT]),
        "limit": LIST_LIMIT,
        "states": RunState.choices,
        "state": state,
        "projects": projects,
        "project": project,
    }
    return render(request, "workflows/list.html", context)


@dataclass
class Bar:
    call: Call
    left: float  # percent of the run's span
    width: float


def timeline(run: WorkflowRun, calls: list[Call]) -> list[Bar]:
    """Each call's start and end as a share of the run's span (a simple Gantt chart)."""
    timed = [c for c in calls if c.started_at is not None]
    if not timed:
        return []
    starts = [c.started_at for c in timed] + ([run.started_at] if run.started_at else [])
    ends = [c.finished_at or c.started_at for c in timed] + [run.finished_at or timezone.now()]
    start = min(s for s in starts if s is not None)
    end = max(e for e in ends if e is not None)
    span = max((end - start).total_seconds(), 1e-3)
    bars = []
    for call in timed:
        assert call.started_at is not None
        left = (call.started_at - start).total_seconds() / span * 100
        finish = call.finished_at or end
        width = max((finish - call.started_at).total_seconds() / span * 100, 0.5)
        bars.append(Bar(call, round(left, 2), round(min(width, 100 - left), 2)))
    return bars


@require_safe
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = _get_run(request, pk)
    calls = list(run.calls.all())
    cached = [c for c in calls if c.cache_hit]
    context = {
        "run": run,
        "calls": calls,
        "bars": timeline(run, calls),
        "cached": cached,
        "cache_sources": sorted({c.cached_from for c in cached if c.cached_from}),
    }
    return render(request, "workflows/detail.html", context)


@require_safe
def run_logs(request: HttpRequest, pk: int) -> HttpResponse:
    run = _get_run(request, pk)
    calls = list(run.calls.all())
    call_id = request.GET.get("call", "")
    call = next((c for c in calls if str(c.pk) == call_id), None)
    if call is None:
        call = next((c for c in calls if c.failure_message), calls[0] if calls else None)
    stream = "stdout" if request.GET.get("stream") == "stdout" else "stderr"
    log = services.read_log(call, stream) if call is not None else None
    context = {"run": run, "calls": calls, "call": call, "stream": stream, "log": log}
    return render(request, "workflows/logs.html", context)


@require_safe
def run_outputs(request: HttpRequest, pk: int) -> HttpResponse:
    run = _get_run(request, pk)
    files, values = access.output_files(run)
    context = {
        "run": run,
        "files": [(f, services.signed_url(f.url)) for f in files],
        "values": sorted(values.items()),
    }
    return render(request, "workflows/outputs.html", context)


@require_POST
def abort(request: HttpRequest, pk: int) -> HttpResponse:
    run = _get_run(request, pk)
    try:
        aborted = services.abort(run)
    except EngineError as exc:
        messages.error(request, f"Could not abort #{run.pk}: {exc}")
    else:
        if aborted:
            messages.success(request, f"Aborting #{run.pk}.")
        else:
            messages.info(request, f"#{run.pk} had ended already.")
    return redirect("workflows:detail", pk=run.pk)


@require_POST
def resubmit(request: HttpRequest, pk: int) -> HttpResponse:
    run = _get_run(request, pk)
    try:
        new = services.resubmit(run, request.user)  # type: ignore[arg-type]
    except services.SubmissionError as exc:
        problems = "; ".join(m for ms in exc.message_dict.values() for m in ms)
        messages.error(request, f"#{run.pk} was not resubmitted: {problems}")
        return redirect("workflows:detail", pk=run.pk)
    messages.success(request, f"Resubmitted #{run.pk} as #{new.pk}.")
    return redirect("workflows:detail", pk=new.pk)
