from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from django.contrib.auth.models import User
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from clusters.models import Cluster, ClusterNode
from images.models import ComputeImage, Software
from jobs import live, movies
from jobs.choices import FrameState, JobState
from jobs.models import Frame, RenderJob, Task
from jobs.outputs import signed_link
from projects.models import Project, StorageMapping
from renderhub import storage

from .job_requests import CancelSerializer as CancelSerializer
from .job_requests import PauseSerializer as PauseSerializer
from .job_requests import SubmitRenderSerializer as SubmitRenderSerializer
from .models import ApiToken

log = logging.getLogger(__name__)


def absolute_link(request: Any, url: str) -> str | None:
    """A signed download link for a storage URL (absolute for local disk), or None."""
    if not url:
        return None
    try:
        link = signed_link(url)
    except (storage.StorageError, ValueError) as exc:
        log.warning("no signed link for %s: %s", url, exc)
        return None
    return request.build_absolute_uri(link) if request is not None else link


# --- Catalogue --------------------------------------------------------------------------


class StorageMappingSerializer(serializers.ModelSerializer):
    artist_paths = serializers.ListField(
        source="artist_path_list",
        child=serializers.CharField(),
        read_only=True,
        help_text="What the folder is on artists' machines (P:\\projects\\, /Volumes/…/).",
    )

    class Meta:
        model = StorageMapping
        fields = ("source", "destination", "artist_paths", "writable", "lockable")


class ProjectSerializer(serializers.ModelSerializer):
    mappings = StorageMappingSerializer(many=True, read_only=True)

    class Meta:
        model = Project
        fields = (
            "id",
            "name",
            "description",
            "image",
            "output_prefix",
            "node_output_dir",
            "auto_download",
            "mappings",
            "created_at",
        )


class ComputeImageSerializer(serializers.ModelSerializer):
    class Meta:
        model = ComputeImage
        fields = ("id", "name", "image_id", "platform", "description", "created_at")


class SoftwareSerializer(serializers.ModelSerializer):
    scene_suffixes = serializers.ListField(
        child=serializers.CharField(), source="suffixes", read_only=True
    )

    class Meta:
        model = Software
        fields = (
            "id",
            "image",
            "name",
            "version",
            "scene_suffixes",
            "command_template",
            "parameters",
            "progress_parser",
            "network",
        )


class ClusterNodeSerializer(serializers.ModelSerializer):
    class Meta:
        model = ClusterNode
        fields = ("name", "state", "cpu_count", "cpu_percent", "memory_percent", "last_seen")


class ClusterSerializer(serializers.ModelSerializer):
    nodes = ClusterNodeSerializer(many=True, read_only=True)

    class Meta:
        model = Cluster
        fields = (
            "id",
            "name",
            "backend",
            "image",
            "instance_type",
            "desired_nodes",
            "max_nodes",
            "state",
            "suspended_at",
            "queue",
            "nodes",
            "created_at",
            "updated_at",
        )


class ResizeSerializer(serializers.Serializer):
    desired_nodes = serializers.IntegerField(min_value=0, max_value=10_000)


# --- Render jobs ------------------------------------------------------------------------


class RenderJobListSerializer(serializers.ListSerializer[RenderJob]):
    """Jobs in a list: their ETAs in one batch of queries, not a few per job."""

    def to_representation(self, data: Any) -> list[Any]:
        jobs = list(data.all() if hasattr(data, "all") else data)
        self.context["etas"] = live.reckoned_etas(jobs)  # kept per job version
        return super().to_representation(jobs)


class RenderJobSerializer(serializers.ModelSerializer):
    project: serializers.SlugRelatedField[Project] = serializers.SlugRelatedField(
        slug_field="name", read_only=True
    )
    project_id = serializers.IntegerField(read_only=True)
    software: serializers.StringRelatedField[Software] = serializers.StringRelatedField()
    software_id = serializers.IntegerField(read_only=True)
    cluster: serializers.SlugRelatedField[Cluster] = serializers.SlugRelatedField(
        slug_field="name", read_only=True
    )
    cluster_id = serializers.IntegerField(read_only=True)
    submitted_by: serializers.SlugRelatedField[User] = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )
    after: serializers.PrimaryKeyRelatedField[RenderJob] = serializers.PrimaryKeyRelatedField(
        many=True, read_only=True, help_text="Ids of the jobs it waits for."
    )
    progress = serializers.FloatField(read_only=True)
    duration = serializers.FloatField(read_only=True, allow_null=True)
    eta_seconds = serializers.SerializerMethodField()
    eta_at = serializers.SerializerMethodField()
    movie = serializers.SerializerMethodField()
    links = serializers.SerializerMethodField()

    class Meta:
        model = RenderJob
        list_serializer_class = RenderJobListSerializer
        fields = (
            "id",
            "name",
            "state",
            "project",
            "project_id",
            "software",
            "software_id",
            "cluster",
            "cluster_id",
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
            "priority",
            "test_frame_first",
            "paused_at",
            "after",
            "waiting",
            "hold_reason",
            "frames_done",
            "frames_failed",
            "progress",
            "render_seconds",
            "failure_reason",
            "warnings",
            "output_url",
            "created_at",
            "started_at",
            "finished_at",
            "duration",
            "eta_seconds",
            "eta_at",
            "movie",
            "links",
        )

    @extend_schema_field(
        {
            "type": "number",
            "nullable": True,
            "description": "Seconds to go for an active job, from its measured speed and the "
            "slots that may run it; null when it ended or nothing is measured yet.",
        }
    )
    def get_eta_seconds(self, job: RenderJob) -> float | None:
        ends = self._eta_ends(job)
        return None if ends is None else round(max(0.0, ends - time.time()), 1)

    @extend_schema_field(
        {
            "type": "string",
            "format": "date-time",
            "nullable": True,
            "description": "When the active job is expected to end (the ETA as an instant): a "
            "client polling with If-None-Match counts down to it, as the version does not "
            "move with the clock; null as for eta_seconds.",
        }
    )
    def get_eta_at(self, job: RenderJob) -> str | None:
        ends = self._eta_ends(job)
        if ends is None:
            return None
        return serializers.DateTimeField().to_representation(datetime.fromtimestamp(ends, UTC))

    def _eta_ends(self, job: RenderJob) -> float | None:
        """The instant (``time.time()``) the job's ETA ends: when it was reckoned (kept per
        job version, ``live.reckoned_etas``) plus the seconds it said."""
        etas = self.context.get("etas")
        found = (etas if etas is not None else live.reckoned_etas([job])).get(job.pk)
        if not found:
            return None
        eta, reckoned = found
        return None if eta.seconds is None else reckoned + eta.seconds

    @extend_schema_field(
        {
            "type": "object",
            "nullable": True,
            "description": "The preview movie asked for at submit: its job, that job's state "
            "and, once finished, a signed link to the MP4 (null otherwise).",
            "properties": {
                "job": {"type": "integer"},
                "state": {"type": "string"},
                "url": {"type": "string", "nullable": True},
            },
        }
    )
    def get_movie(self, job: RenderJob) -> dict[str, Any] | None:
        preview = movies.preview_of(job)
        if preview is None:
            return None
        url = preview.url
        request = self.context.get("request")
        if url and request and url.startswith("/"):
            url = request.build_absolute_uri(url)
        return {"job": preview.job.pk, "state": preview.job.state, "url": url or None}

    @extend_schema_field(
        {"type": "object", "additionalProperties": {"type": "string", "format": "uri"}}
    )
    def get_links(self, job: RenderJob) -> dict[str, str]:
        request = self.context.get("request")
        links = {}
        names = ("detail", "tasks", "frames", "logs", "outputs", "cancel", "retry")
        for name in (*names, "pause", "resume"):
            view = "api:job-detail" if name == "detail" else f"api:job-{name}"
            path = reverse(view, args=[job.pk])
            links[name] = request.build_absolute_uri(path) if request else path
        return links


class SubmissionSerializer(serializers.Serializer):
    submission = serializers.UUIDField()
    jobs = RenderJobSerializer(many=True)
    warnings = serializers.ListField(
        child=serializers.CharField(),
        help_text="What the scene files' facts say may go wrong (e.g. denoising on a Blender "
        "without OpenImageDenoise); the jobs were submitted.",
    )


class JobFilterSerializer(serializers.Serializer):
    state = serializers.MultipleChoiceField(choices=JobState.choices, required=False)
    project = serializers.CharField(required=False, max_length=100)
    created_after = serializers.DateTimeField(required=False)
    created_before = serializers.DateTimeField(required=False)


class TaskSerializer(serializers.ModelSerializer):
    frame_label = serializers.CharField(read_only=True)

    class Meta:
        model = Task
        fields = (
            "index",
            "frames",
            "frame_label",
            "is_test",
            "state",
            "attempts",
            "max_attempts",
            "node",
            "current_frame",
            "cpu_percent",
            "exit_code",
            "failure_reason",
            "queued_at",
            "started_at",
            "finished_at",
            "heartbeat_at",
        )


class FrameSerializer(serializers.ModelSerializer):
    task = serializers.IntegerField(source="task.index", read_only=True)
    output_link = serializers.SerializerMethodField()
    thumbnail_link = serializers.SerializerMethodField()

    class Meta:
        model = Frame
        fields = (
            "number",
            "task",
            "state",
            "started_at",
            "finished_at",
            "seconds",
            "failure_reason",
            "output_url",
            "output_link",
            "thumbnail_link",
        )

    @extend_schema_field(OpenApiTypes.URI)
    def get_output_link(self, frame: Frame) -> str | None:
        if frame.state != FrameState.DONE:
            return None
        return absolute_link(self.context.get("request"), frame.output_url)

    @extend_schema_field(OpenApiTypes.URI)
    def get_thumbnail_link(self, frame: Frame) -> str | None:
        if frame.state != FrameState.DONE:
            return None
        return absolute_link(self.context.get("request"), frame.thumbnail_url)


class FrameFilterSerializer(serializers.Serializer):
    state = serializers.MultipleChoiceField(choices=FrameState.choices, required=False)


LOG_STREAMS = {"agent": "agent.log", "stdout": "stdout.log", "stderr": "stderr.log"}


class LogStreamSerializer(serializers.Serializer):
    tail = serializers.CharField(help_text="The last lines, kept in the database.")
    link = serializers.URLField(
        allow_null=True,
        help_text="Signed link to the whole file in storage (there once an attempt ended).",
    )


class TaskLogsSerializer(serializers.Serializer):
    task = serializers.IntegerField(source="index")
    state = serializers.CharField()
    node = serializers.CharField()
    log_url = serializers.CharField()
    agent = serializers.SerializerMethodField()
    stdout = serializers.SerializerMethodField()
    stderr = serializers.SerializerMethodField()

    def _stream(self, task: Task, stream: str) -> dict[str, Any]:
        tail = getattr(task, "agent_log_tail" if stream == "agent" else f"{stream}_tail")
        link = None
        if task.log_url:
            try:
                url = storage.join(task.log_url, LOG_STREAMS[stream])
            except storage.StorageError:
                url = ""
            link = absolute_link(self.context.get("request"), url)
        return {"tail": tail, "link": link}

    @extend_schema_field(LogStreamSerializer)
    def get_agent(self, task: Task) -> dict[str, Any]:
        return self._stream(task, "agent")

    @extend_schema_field(LogStreamSerializer)
    def get_stdout(self, task: Task) -> dict[str, Any]:
        return self._stream(task, "stdout")

    @extend_schema_field(LogStreamSerializer)
    def get_stderr(self, task: Task) -> dict[str, Any]:
        return self._stream(task, "stderr")


class LogFilterSerializer(serializers.Serializer):
    task = serializers.IntegerField(required=False, min_value=0)


class OutputSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="Path below the job's output folder.")
    size = serializers.IntegerField(allow_null=True)
    url = serializers.CharField(help_text="Storage URL.")
    link = serializers.URLField(allow_null=True, help_text="Signed download link.")


class ActionResultSerializer(serializers.Serializer):
    detail = serializers.CharField()
    warnings = serializers.ListField(
        child=serializers.CharField(),
        help_text="Done, but something after it failed, e.g. a cloud job not stopped yet.",
    )
    tasks = serializers.IntegerField(help_text="Chunks cancelled or queued again.")
    job = RenderJobSerializer()


# --- Tokens -----------------------------------------------------------------------------


class ApiTokenSerializer(serializers.ModelSerializer):
    project: serializers.SlugRelatedField[Project] = serializers.SlugRelatedField(
        slug_field="name", read_only=True
    )
    is_active = serializers.BooleanField(read_only=True)

    class Meta:
        model = ApiToken
        fields: tuple[str, ...] = (
            "id",
            "name",
            "prefix",
            "project",
            "created_at",
            "expires_at",
            "last_used_at",
            "revoked_at",
            "is_active",
        )


class CreateTokenSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)
    project = serializers.CharField(
        required=False,
        allow_null=True,
        max_length=100,
        help_text="Limit to a project (id or name).",
    )


class NewTokenSerializer(ApiTokenSerializer):
    key = serializers.CharField(help_text="Shown only now: store it, it cannot be shown again.")

    class Meta(ApiTokenSerializer.Meta):
        fields = (*ApiTokenSerializer.Meta.fields, "key")
