from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from . import services
from .engines import EngineError
from .forms import SubmitWorkflowForm
from .models import Call, WorkflowRun


class CallInline(admin.TabularInline):
    model = Call
    extra = 0
    can_delete = False
    fields = (
        "name",
        "shard",
        "attempt",
        "status",
        "started_at",
        "finished_at",
        "return_code",
        "cache_hit",
        "backend_job_id",
        "failure_message",
    )
    readonly_fields = fields
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: WorkflowRun | None = None) -> bool:
        return False


@admin.register(WorkflowRun)
class WorkflowRunAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "name",
        "project",
        "engine",
        "state",
        "calls_column",
        "submitted_by",
        "created_at",
        "duration_column",
    )
    list_display_links = ("id", "name")
    list_filter = ("state", "engine", ("project", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("project", "submitted_by")
    search_fields = ("name", "workflow_name", "engine_run_id", "=id")
    date_hierarchy = "created_at"
    show_full_result_count = False
    actions = ["abort_runs", "resubmit_runs"]
    inlines = [CallInline]
    change_list_template = "workflows/admin/change_list.html"
    readonly_fields = (
        "project",
        "engine",
        "workflow_name",
        "state",
        "engine_status",
        "engine_run_id",
        "failure_message",
        "warnings",
        "poll_error",
        "staff_page",
        "wdl_url",
        "dependencies_url",
        "inputs",
        "options",
        "labels",
        "working_dir",
        "outputs_dir",
        "outputs",
        "submitted_by",
        "resubmitted_from",
        "worker",
        "created_at",
        "sent_at",
        "started_at",
        "finished_at",
        "heartbeat_at",
        "wdl_source",
    )
    fields = ("name", *readonly_fields)

    def get_queryset(self, request: HttpRequest) -> QuerySet[WorkflowRun]:
        return super().get_queryset(request).visible_to(request.user)  # type: ignore[attr-defined]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # submissions go through the Submit workflow form, which validates

    def get_urls(self) -> list[URLPattern]:
        submit = path(
            "submit/",
            self.admin_site.admin_view(self.submit_view),
            name="workflows_workflowrun_submit",
        )
        return [submit, *super().get_urls()]

    def submit_view(self, request: HttpRequest) -> HttpResponse:
        form = SubmitWorkflowForm(request.POST or None, request.FILES or None, user=request.user)
        # submit() returns None when the services refused: their messages are on the form.
        if request.method == "POST" and form.is_valid() and (run := form.submit()):
            self.message_user(request, f"Submitted #{run.pk} {run.name}.", messages.SUCCESS)
            for warning in run.warnings:
                self.message_user(request, warning, messages.WARNING)
            return redirect(reverse("admin:workflows_workflowrun_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": "Submit workflow",
            "form": form,
            "opts": self.model._meta,
        }
        return render(request, "workflows/admin/submit.html", context)

    @admin.display(description="Calls")
    def calls_column(self, obj: WorkflowRun) -> str:
        return str(obj.calls.count())

    @admin.display(description="Duration")
    def duration_column(self, obj: WorkflowRun) -> str:
        from renderhub.cli import format_duration

        return format_duration(obj.duration)

    @admin.display(description="Staff page")
    def staff_page(self, obj: WorkflowRun) -> str:
        return format_html('<a href="/workflows/{}/">calls, timeline, logs, outputs</a>', obj.pk)

    @admin.action(description="Abort selected runs", permissions=["change"])
    def abort_runs(self, request: HttpRequest, queryset: QuerySet[WorkflowRun]) -> None:
        count = 0
        for run in queryset:
            try:
                count += services.abort(run)
            except EngineError as exc:
                self.message_user(request, f"#{run.pk}: {exc}", messages.ERROR)
        self.message_user(request, f"Aborting {count} run(s).", messages.SUCCESS)

    @admin.action(description="Resubmit selected runs", permissions=["change"])
    def resubmit_runs(self, request: HttpRequest, queryset: QuerySet[WorkflowRun]) -> None:
        new = []
        for run in queryset.select_related("project"):
            try:
                new.append(services.resubmit(run, request.user))  # type: ignore[arg-type]
            except services.SubmissionError as exc:
                problems = "; ".join(m for ms in exc.message_dict.values() for m in ms)
                self.message_user(
                    request, f"#{run.pk} was not resubmitted: {problems}", messages.ERROR
                )
        if new:
            ids = ", ".join(f"#{r.pk}" for r in new)
            self.message_user(request, f"Resubmitted as {ids}.", messages.SUCCESS)
