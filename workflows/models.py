from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from .choices import ACTIVE_RUN_STATES, CallStatus, Engine, RunState

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User


class WorkflowRunQuerySet(models.QuerySet["WorkflowRun"]):
    def visible_to(self, user: User | AnonymousUser) -> WorkflowRunQuerySet:
        """Like render jobs: superusers see every run, members their projects' runs."""
        from projects.models import Project

        if user.is_authenticated and user.is_superuser:
            return self
        return self.filter(project__in=Project.objects.visible_to(user))


class WorkflowRun(models.Model):
    """One WDL workflow run on an engine; its task calls are Call rows."""

    project = models.ForeignKey(
        "projects.Project", on_delete=models.PROTECT, related_name="workflow_runs"
    )
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="workflow_runs",
    )
    resubmitted_from = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="resubmissions"
    )
    name = models.CharField(max_length=200)
    engine = models.CharField(max_length=30, choices=Engine.choices, default=Engine.MINIWDL)
    workflow_name = models.CharField(max_length=200, blank=True, help_text="Named in the WDL.")
    wdl_source = models.TextField(
        blank=True, help_text="The WDL text (uploaded, or read from the WDL URL at submission)."
    )
    wdl_url = models.CharField("WDL URL", max_length=1024, blank=True)
    dependencies_url = models.CharField(
        max_length=1024, blank=True, help_text="Zip of the WDL files the workflow imports."
    )
    inputs = models.JSONField(default=dict, blank=True)
    options = models.JSONField(default=dict, blank=True)
    labels = models.JSONField(default=dict, blank=True)
    working_dir = models.CharField(
        max_length=1024, help_text="Storage folder for the engine's execution files and logs."
    )
    outputs_dir = models.CharField(max_length=1024, help_text="Storage folder for final outputs.")
    state = models.CharField(max_length=20, choices=RunState.choices, default=RunState.SUBMITTED)
    engine_run_id = models.CharField(max_length=200, blank=True, db_index=True)
    engine_url = models.CharField(
        max_length=1024, blank=True, help_text="The Cromwell server the run was sent to."
    )
    engine_status = models.CharField(
        max_length=50, blank=True, help_text="The engine's own word for the state."
    )
    failure_message = models.TextField(blank=True)
    warnings = models.JSONField(
        default=list,
        blank=True,
        help_text="Said at submission: what the engine will ignore or change.",
    )
    outputs = models.JSONField(default=dict, blank=True)
    worker = models.CharField(max_length=200, blank=True, help_text="Where miniwdl runs it.")
    pid = models.PositiveIntegerField(null=True, blank=True)
    poll_error = models.TextField(blank=True, help_text="The last failed poll of the engine.")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    queued_at = models.DateTimeField(null=True, blank=True, help_text="Start task enqueued.")
    sent_at = models.DateTimeField(null=True, blank=True, help_text="Handed to the engine.")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    polled_at = models.DateTimeField(null=True, blank=True)

    objects = WorkflowRunQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        # Granted per user or group in the admin; superusers have it implicitly.
        permissions = [("run_on_host", "Can run workflows on this machine (miniwdl engine)")]
        indexes = [
            models.Index(fields=["state", "-created_at"], name="wfrun_state_created"),
            models.Index(fields=["project", "-created_at"], name="wfrun_project_created"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.name}"

    def get_absolute_url(self) -> str:
        return reverse("workflows:detail", args=[self.pk])

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_RUN_STATES

    @property
    def duration(self) -> float | None:
        if not self.started_at:
            return None
        return ((self.finished_at or timezone.now()) - self.started_at).total_seconds()


class Call(models.Model):
    """One attempt of one shard of one task call (Cromwell's metadata granularity)."""

    run = models.ForeignKey(WorkflowRun, on_delete=models.CASCADE, related_name="calls")
    key = models.CharField(
        max_length=500, help_text="The engine's stable id for this attempt, unique in the run."
    )
    name = models.CharField(max_length=300, help_text="Fully qualified, e.g. germline.align.")
    shard = models.IntegerField(default=-1, help_text="-1 when not scattered.")
    attempt = models.PositiveIntegerField(default=1)
    status = models.CharField(
        max_length=30, choices=CallStatus.choices, default=CallStatus.NOT_STARTED
    )
    backend_status = models.CharField(max_length=50, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    return_code = models.IntegerField(null=True, blank=True)
    stdout = models.CharField(max_length=1024, blank=True)
    stderr = models.CharField(max_length=1024, blank=True)
    backend_job_id = models.CharField(max_length=200, blank=True)
    cache_hit = models.BooleanField(default=False)
    # Not a foreign key: the run may be gone; the cache is per project, so it is this one's.
    cached_from = models.PositiveIntegerField(
        null=True, blank=True, help_text="The run whose call made this cached call's outputs."
    )
    failure_message = models.TextField(blank=True)

    class Meta:
        ordering = [F("started_at").asc(nulls_last=True), "name", "shard", "attempt"]
        constraints = [
            models.UniqueConstraint(fields=["run", "key"], name="call_unique_key_per_run")
        ]

    def __str__(self) -> str:
        return f"{self.label} (attempt {self.attempt})"

    @property
    def label(self) -> str:
        return f"{self.name}[{self.shard}]" if self.shard >= 0 else self.name

    @property
    def duration(self) -> float | None:
        if not self.started_at:
            return None
        end = self.finished_at or (timezone.now() if self.status == CallStatus.RUNNING else None)
        return (end - self.started_at).total_seconds() if end else None
