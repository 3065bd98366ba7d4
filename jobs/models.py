from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models

from .choices import ACTIVE_JOB_STATES, FrameState, JobState, TaskState
from .framespec import format_frames

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User


class RenderJobQuerySet(models.QuerySet["RenderJob"]):
    def active(self) -> RenderJobQuerySet:
        """Jobs not ended yet (queued, running, or waiting for a test frame)."""
        return self.filter(state__in=ACTIVE_JOB_STATES)

    def visible_to(self, user: User | AnonymousUser) -> RenderJobQuerySet:
        from projects.models import Project

        if user.is_authenticated and user.is_superuser:
            return self
        return self.filter(project__in=Project.objects.visible_to(user))


class RenderJob(models.Model):
    """One scene rendered over a frame range; split into Tasks (chunks) of Frames."""

    project = models.ForeignKey(
        "projects.Project", on_delete=models.PROTECT, related_name="render_jobs"
    )
    software = models.ForeignKey(
        "images.Software", on_delete=models.PROTECT, related_name="render_jobs"
    )
    cluster = models.ForeignKey(
        "clusters.Cluster", on_delete=models.PROTECT, related_name="render_jobs"
    )
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="render_jobs",
    )
    submission = models.UUIDField(
        default=uuid.uuid4, db_index=True, help_text="Jobs submitted together share this id."
    )
    name = models.CharField(max_length=200)
    scene_url = models.CharField(max_length=1024)
    frame_spec = models.CharField(max_length=500)
    frame_count = models.PositiveIntegerField()
    node_count = models.PositiveIntegerField()
    max_nodes = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="At most this many of its chunks run at once (own machines); empty: no limit.",
    )
    chunk_size = models.PositiveIntegerField(null=True, blank=True)
    chunk_seconds = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Adaptive chunks: each about this many seconds of measured render time, the "
        "work left re-split as frames finish (jobs.chunking); empty: fixed chunks.",
    )
    parameters = models.JSONField(default=dict, blank=True)
    priority = models.SmallIntegerField(default=0, help_text="Higher runs first.")
    test_frame_first = models.BooleanField(
        default=False, help_text="Render one frame first and hold the rest until it succeeds."
    )
    state = models.CharField(max_length=20, choices=JobState.choices, default=JobState.QUEUED)
    paused_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Set while the job is paused (jobs.scheduling): no new chunk of it starts.",
    )
    after = models.ManyToManyField(
        "self",
        symmetrical=False,
        blank=True,
        related_name="dependents",
        help_text="Jobs this one waits for: it starts when they have all finished.",
    )
    waiting = models.BooleanField(
        default=False,
        help_text="Some job it runs after has not finished yet (jobs.scheduling).",
    )
    hold_reason = models.TextField(
        blank=True, help_text="Why it waits although nothing upstream runs (one failed)."
    )
    movie_of = models.ForeignKey(
        "self",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="movies",
        help_text="The render job whose finished frames this job encodes into a preview movie.",
    )
    failure_reason = models.TextField(blank=True)
    warnings = models.JSONField(
        default=list,
        blank=True,
        help_text="What the checks at submit warned about (scene facts, files accepted "
        "missing); shown on the job page.",
    )
    scene_files = models.JSONField(
        null=True,
        blank=True,
        help_text="What the scene needs on a node, fixed at submit (jobs.scene_manifest): "
        "each file's URL and place, paths to rewrite, files accepted missing.",
    )
    output_url = models.CharField(max_length=1024)
    # Counters kept by the services so lists never count a million frames.
    frames_done = models.PositiveIntegerField(default=0)
    frames_failed = models.PositiveIntegerField(default=0)
    render_seconds = models.FloatField(default=0.0, help_text="Sum of per-frame render time.")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    downloaded_to = models.CharField(max_length=1024, blank=True)

    objects = RenderJobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["state", "-created_at"], name="job_state_created"),
            models.Index(fields=["project", "-created_at"], name="job_project_created"),
            # The finished list and the dashboard's recent failures (newest ended first).
            models.Index(fields=["state", "-finished_at"], name="job_state_finished"),
            # The finished list's keyset pages (jobs.keyset): newest ended first across
            # the terminal states, read in index order and stopped after one page.
            models.Index(fields=["-finished_at", "-id"], name="job_finished_id"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.name}"

    @property
    def is_active(self) -> bool:
        return self.state in (JobState.QUEUED, JobState.RUNNING)

    @property
    def is_paused(self) -> bool:
        return self.paused_at is not None and self.is_active

    @property
    def is_waiting(self) -> bool:
        """Waits for jobs it runs after (held, with ``hold_reason``, when one of them failed)."""
        return self.waiting and self.is_active

    @property
    def progress(self) -> float:
        return self.frames_done / self.frame_count if self.frame_count else 0.0

    @property
    def duration(self) -> float | None:
        if not self.started_at:
            return None
        from django.utils import timezone

        return ((self.finished_at or timezone.now()) - self.started_at).total_seconds()


class Task(models.Model):
    """A chunk of frames rendered by one agent run on one node."""

    job = models.ForeignKey(RenderJob, on_delete=models.CASCADE, related_name="tasks")
    index = models.PositiveIntegerField()
    frames = models.JSONField(help_text="Frame numbers of this chunk, ascending.")
    is_test = models.BooleanField(default=False)
    state = models.CharField(max_length=20, choices=TaskState.choices, default=TaskState.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=3)
    node = models.CharField(max_length=200, blank=True, help_text="Where it runs or ran.")
    celery_task_id = models.CharField(max_length=100, blank=True)
    pid = models.PositiveIntegerField(null=True, blank=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    current_frame = models.IntegerField(null=True, blank=True)
    cpu_percent = models.FloatField(null=True, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    failure_reason = models.TextField(blank=True)
    log_url = models.CharField(
        max_length=1024,
        blank=True,
        help_text="Storage folder with agent.log, stdout.log, stderr.log",
    )
    agent_log_tail = models.TextField(blank=True)
    stdout_tail = models.TextField(blank=True)
    stderr_tail = models.TextField(blank=True)
    # batchcompute backend: the cloud job running this chunk, as its instance number.
    cloud_job = models.ForeignKey(
        "CloudJob", on_delete=models.SET_NULL, null=True, blank=True, related_name="tasks"
    )
    cloud_instance = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["job", "index"]
        constraints = [
            models.UniqueConstraint(fields=["job", "index"], name="task_unique_index_per_job")
        ]
        indexes = [models.Index(fields=["state", "heartbeat_at"], name="task_state_heartbeat")]

    def __str__(self) -> str:
        return f"job {self.job_id} task {self.index} ({self.frame_label})"

    @property
    def frame_label(self) -> str:
        return format_frames(self.frames)


class Frame(models.Model):
    job = models.ForeignKey(RenderJob, on_delete=models.CASCADE, related_name="frame_set")
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="frame_set")
    number = models.IntegerField()
    state = models.CharField(max_length=20, choices=FrameState.choices, default=FrameState.QUEUED)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    seconds = models.FloatField(null=True, blank=True)
    cost_seconds = models.FloatField(
        null=True,
        blank=True,
        help_text="The render seconds scaled to the node's share with every slot busy "
        "(jobs.machine_share): what adaptive chunks are cut by.",
    )
    output_url = models.CharField(max_length=1024, blank=True)
    thumbnail_url = models.CharField(max_length=1024, blank=True)
    failure_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["job", "number"]
        constraints = [
            models.UniqueConstraint(fields=["job", "number"], name="frame_unique_number_per_job")
        ]
        indexes = [models.Index(fields=["job", "state"], name="frame_job_state")]

    def __str__(self) -> str:
        return f"job {self.job_id} frame {self.number}"


class AttemptState(models.TextChoices):
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    REQUEUED = "requeued", "Requeued"


class TaskAttempt(models.Model):
    """One run of a chunk on one node, kept after the chunk is retried: a retried chunk
    still shows attempt 1's renderer error and logs next to attempt 2's.

    Created when the attempt starts, closed (outcome, exit code, reason, log tails and
    the storage folder of its logs) when it ends. ``number`` counts on across a job's
    retries (Task.attempts restarts at 0 then), so it also names the attempt's log folder.
    """

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="history")
    # The job too: the node page lists a node's attempts of visible jobs without a join.
    job = models.ForeignKey(RenderJob, on_delete=models.CASCADE, related_name="chunk_attempts")
    number = models.PositiveIntegerField()
    node = models.CharField(max_length=200, blank=True)
    state = models.CharField(
        max_length=20, choices=AttemptState.choices, default=AttemptState.RUNNING
    )
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    failure_reason = models.TextField(blank=True)
    log_url = models.CharField(max_length=1024, blank=True)
    agent_log_tail = models.TextField(blank=True)
    stdout_tail = models.TextField(blank=True)
    stderr_tail = models.TextField(blank=True)
    cloud_job = models.ForeignKey(
        "CloudJob", on_delete=models.SET_NULL, null=True, blank=True, related_name="attempts"
    )
    cloud_instance = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["task", "number"]
        constraints = [
            models.UniqueConstraint(fields=["task", "number"], name="attempt_unique_number")
        ]
        indexes = [models.Index(fields=["node", "-started_at"], name="attempt_node_started")]

    def __str__(self) -> str:
        return f"job {self.job_id} task {self.task_id} attempt {self.number}"

    @property
    def duration(self) -> float | None:
        if not self.started_at:
            return None
        from django.utils import timezone

        return ((self.finished_at or timezone.now()) - self.started_at).total_seconds()


class NodeBlock(models.Model):
    """A node that kept failing a job's chunks; it takes no more chunks of that job.

    Delete the row (admin) to let the node try again.
    """

    job = models.ForeignKey(RenderJob, on_delete=models.CASCADE, related_name="node_blocks")
    node = models.CharField(max_length=200)
    failures = models.PositiveIntegerField(default=0)
    last_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["job", "node"]
        constraints = [
            models.UniqueConstraint(fields=["job", "node"], name="nodeblock_unique_node_per_job")
        ]

    def __str__(self) -> str:
        return f"{self.node} on job {self.job_id} ({self.failures} failures)"

    @property
    def is_blocking(self) -> bool:
        limit = settings.RENDER_BLOCKLIST_AFTER
        return bool(limit) and self.failures >= limit


class CloudJobState(models.TextChoices):
    SUBMITTING = "submitting", "Submitting"
    ACTIVE = "active", "Active"
    ENDED = "ended", "Ended"


class CloudJob(models.Model):
    """One BatchCompute job: some chunks of a RenderJob, one instance each.

    The row is written before the cloud job is created, under the deployment-tagged
    ``name`` (also the idempotent token) ending in a random part, unique for the life of
    the account: a submission interrupted before ``cloud_id`` was saved is found again by
    name instead of being created (and paid for) twice, and a reinstall counting rows from
    1 again never gets the old install's jobs.
    """

    job = models.ForeignKey(RenderJob, on_delete=models.CASCADE, related_name="cloud_jobs")
    name = models.CharField(max_length=128, unique=True)
    cloud_id = models.CharField(max_length=64, blank=True, db_index=True)
    state = models.CharField(
        max_length=20, choices=CloudJobState.choices, default=CloudJobState.SUBMITTING
    )
    cloud_state = models.CharField(max_length=20, blank=True, help_text="As BatchCompute says.")
    message = models.TextField(blank=True, help_text="BatchCompute's Job.Message.")
    instance_count = models.PositiveIntegerField(default=0)
    log_url = models.CharField(max_length=1024, blank=True)
    stop_requested = models.BooleanField(default=False)
    error = models.TextField(blank=True, help_text="The last failed call, for operators.")
    submit_attempts = models.PositiveIntegerField(default=0)
    # Polling bookkeeping, kept here so a restarted manager resumes where it left off.
    lease_until = models.DateTimeField(null=True, blank=True)
    polled_at = models.DateTimeField(null=True, blank=True)
    snapshot = models.JSONField(default=dict, blank=True)
    scan_marker = models.PositiveIntegerField(null=True, blank=True)
    event_offsets = models.JSONField(default=dict, blank=True)
    agent_results = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(
        null=True, blank=True, help_text="Outputs listed and thumbnails made."
    )
    released_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["state", "lease_until"], name="cloudjob_state_lease")]

    def __str__(self) -> str:
        return self.cloud_id or self.name
