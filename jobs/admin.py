from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils.html import format_html

from renderhub.outcome import add_messages

from . import services
from .forms import SubmitRenderForm
from .models import CloudJob, Frame, NodeBlock, RenderJob, Task


class TaskInline(admin.TabularInline):
    model = Task
    extra = 0
    can_delete = False
    fields = (
        "index",
        "frame_label",
        "state",
        "attempts",
        "node",
        "current_frame",
        "cpu_percent",
        "started_at",
        "finished_at",
        "failure_reason",
    )
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


CLOUD_JOB_FIELDS = (
    "cloud_id",
    "name",
    "state",
    "cloud_state",
    "message",
    "error",
    "instance_count",
    "stop_requested",
    "submitted_at",
    "polled_at",
    "ended_at",
    "released_at",
    "log_url",
)


class CloudJobInline(admin.TabularInline):
    """The job's BatchCompute jobs: what the service said last and the last failed call."""

    model = CloudJob
    extra = 0
    can_delete = False
    fields = CLOUD_JOB_FIELDS
    readonly_fields = fields
    verbose_name = "BatchCompute job"

    def has_add_permission(self, request, obj=None):
        return False


class NodeBlockInline(admin.TabularInline):
    """Nodes kept off this job after repeated failures; delete a row to let one try again."""

    model = NodeBlock
    extra = 0
    fields = ("node", "failures", "last_reason", "updated_at")
    readonly_fields = fields
    verbose_name = "node block"

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(RenderJob)
class RenderJobAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "name",
        "project",
        "state",
        "progress_column",
        "cluster",
        "submitted_by",
        "created_at",
        "duration_column",
    )
    list_display_links = ("id", "name")
    # Only projects with jobs this user sees: other projects' names must not show up here.
    list_filter = ("state", ("project", admin.RelatedOnlyFieldListFilter), "cluster")
    list_select_related = ("project", "cluster", "submitted_by")
    search_fields = ("name", "scene_url", "=id")
    date_hierarchy = "created_at"
    show_full_result_count = False
    actions = [
        "cancel_jobs",
        "cancel_jobs_cascade",
        "retry_jobs",
        "requeue_jobs",
        "pause_jobs",
        "pause_jobs_now",
        "resume_jobs",
    ]
    inlines = [TaskInline, CloudJobInline, NodeBlockInline]
    readonly_fields = (
        "project",
        "software",
        "cluster",
        "submitted_by",
        "submission",
        "scene_url",
        "frame_spec",
        "frame_count",
        "node_count",
        "chunk_size",
        "chunk_seconds",
        "max_nodes",
        "parameters",
        "test_frame_first",
        "state",
        "paused_at",
        "after",
        "waiting",
        "hold_reason",
        "failure_reason",
        "output_url",
        "frames_done",
        "frames_failed",
        "render_seconds",
        "created_at",
        "started_at",
        "finished_at",
        "downloaded_to",
    )
    fields = ("name", "priority", *readonly_fields)

    def get_queryset(self, request: HttpRequest) -> QuerySet[RenderJob]:
        return super().get_queryset(request).visible_to(request.user)  # type: ignore[attr-defined]

    def save_model(self, request: HttpRequest, obj: RenderJob, form: Any, change: bool) -> None:
        """Write only what the form changed (state and counters move on under the workers);
        a new priority goes through its service (its rules, and a dispatch)."""
        changed = [f for f in form.changed_data if f != "priority"]
        if changed:
            obj.save(update_fields=changed)
        if "priority" in form.changed_data:
            wanted = form.cleaned_data["priority"]
            add_messages(request, services.set_priority(obj, wanted, request.user))  # type: ignore[arg-type]

    def get_inlines(self, request: HttpRequest, obj: RenderJob | None = None) -> list[Any]:
        if obj is None or not obj.cloud_jobs.exists():  # own machines: no BatchCompute jobs
            return [i for i in self.inlines if i is not CloudJobInline]
        return list(self.inlines)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # submissions go through the Submit render form, which validates

    def get_urls(self):
        submit = path(
            "submit/", self.admin_site.admin_view(self.submit_view), name="jobs_renderjob_submit"
        )
        return [submit, *super().get_urls()]

    def submit_view(self, request: HttpRequest) -> HttpResponse:
        form = SubmitRenderForm(request.POST or None, user=request.user)
        # form.submit() returns no jobs when the services refuse the submission: it has put
        # their messages on the form's fields, so the form is shown again with them.
        if request.method == "POST" and form.is_valid() and (jobs := form.submit()):
            ids = ", ".join(f"#{j.pk}" for j in jobs)
            self.message_user(request, f"Submitted {ids}.", messages.SUCCESS)
            for warning in form.warnings:
                self.message_user(request, warning, messages.WARNING)
            return redirect(reverse("admin:jobs_renderjob_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": "Submit render",
            "form": form,
            "opts": self.model._meta,
        }
        return render(request, "admin/jobs/submit_render.html", context)

    @admin.display(description="Progress", ordering="frames_done")
    def progress_column(self, obj: RenderJob) -> str:
        failed = f", {obj.frames_failed} failed" if obj.frames_failed else ""
        return format_html(
            '<progress value="{}" max="{}"></progress> {}/{}{}',
            obj.frames_done,
            obj.frame_count,
            obj.frames_done,
            obj.frame_count,
            failed,
        )

    @admin.display(description="Duration")
    def duration_column(self, obj: RenderJob) -> str:
        seconds = obj.duration
        if seconds is None:
            return "-"
        minutes, secs = divmod(int(seconds), 60)
        return f"{minutes}:{secs:02d}"

    @admin.action(description="Cancel selected jobs", permissions=["change"])
    def cancel_jobs(self, request: HttpRequest, queryset: QuerySet[RenderJob]) -> None:
        for job in queryset.select_related("cluster"):
            add_messages(request, services.cancel_job(job))

    @admin.action(
        description="Cancel selected jobs and the jobs waiting for them", permissions=["change"]
    )
    def cancel_jobs_cascade(self, request: HttpRequest, queryset: QuerySet[RenderJob]) -> None:
        for job in queryset.select_related("cluster"):
            add_messages(request, services.cancel_job(job, cascade=True))

    @admin.action(description="Retry failed chunks of selected jobs", permissions=["change"])
    def retry_jobs(self, request: HttpRequest, queryset: QuerySet[RenderJob]) -> None:
        chunks = sum(services.retry_job(job) for job in queryset)
        self.message_user(request, f"Queued {chunks} chunk(s) again.", messages.SUCCESS)

    @admin.action(description="Pause selected jobs (running chunks finish)", permissions=["change"])
    def pause_jobs(self, request: HttpRequest, queryset: QuerySet[RenderJob]) -> None:
        for job in queryset:
            add_messages(request, services.pause_job(job))

    @admin.action(
        description="Pause selected jobs now (running chunks stop and queue again)",
        permissions=["change"],
    )
    def pause_jobs_now(self, request: HttpRequest, queryset: QuerySet[RenderJob]) -> None:
        for job in queryset:
            add_messages(request, services.pause_job(job, now=True))

    @admin.action(description="Resume selected paused jobs", permissions=["change"])
    def resume_jobs(self, request: HttpRequest, queryset: QuerySet[RenderJob]) -> None:
        for job in queryset:
            add_messages(request, services.resume_job(job))

    @admin.action(description="Requeue running chunks of selected jobs", permissions=["change"])
    def requeue_jobs(self, request: HttpRequest, queryset: QuerySet[RenderJob]) -> None:
        chunks = sum(services.requeue_job(job) for job in queryset)
        self.message_user(request, f"Requeued {chunks} chunk(s).", messages.SUCCESS)


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ("__str__", "state", "attempts", "node", "started_at", "finished_at")
    list_filter = ("state",)
    list_select_related = ("job",)
    search_fields = ("=job__id", "node")
    show_full_result_count = False
    actions = ["requeue_tasks"]
    readonly_fields = [f.name for f in Task._meta.fields]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Task]:
        visible = RenderJob.objects.visible_to(request.user)
        return super().get_queryset(request).filter(job__in=visible)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Requeue selected chunks", permissions=["change"])
    def requeue_tasks(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        count = sum(services.requeue_task(t) for t in queryset)
        self.message_user(request, f"Requeued {count} chunk(s).", messages.SUCCESS)


@admin.register(Frame)
class FrameAdmin(admin.ModelAdmin):
    list_display = ("job", "number", "state", "seconds", "finished_at", "failure_reason")
    list_filter = ("state",)
    list_select_related = ("job",)
    search_fields = ("=job__id",)
    show_full_result_count = False
    readonly_fields = [f.name for f in Frame._meta.fields]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Frame]:
        visible = RenderJob.objects.visible_to(request.user)
        return super().get_queryset(request).filter(job__in=visible)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(CloudJob)
class CloudJobAdmin(admin.ModelAdmin):
    """BatchCompute jobs, read-only: RenderHub creates, stops and releases them itself."""

    list_display = ("__str__", "job", "state", "cloud_state", "polled_at", "ended_at", "error")
    list_filter = ("state", "cloud_state")
    list_select_related = ("job",)
    search_fields = ("=job__id", "cloud_id", "name")
    show_full_result_count = False
    fields = ("job", *CLOUD_JOB_FIELDS, "created_at", "finished_at")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[CloudJob]:
        visible = RenderJob.objects.visible_to(request.user)
        return super().get_queryset(request).filter(job__in=visible)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: CloudJob | None = None) -> bool:
        return False  # a row deleted here would leave its cloud job unwatched
