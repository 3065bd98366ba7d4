"""What the render job endpoints take: a submission, and the cancel and pause options
(re-exported by api.serializers)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers


class CancelSerializer(serializers.Serializer):
    cascade = serializers.BooleanField(
        default=False, help_text="Also cancel the jobs waiting for it (directly or not)."
    )


class PauseSerializer(serializers.Serializer):
    now = serializers.BooleanField(
        default=False,
        help_text="Also stop the running chunks (queued again, finished frames kept); "
        "without it they finish.",
    )


class SubmitRenderSerializer(serializers.Serializer):
    """A render submission; project, software and cluster by id or by name."""

    project = serializers.CharField(max_length=100, help_text="Project id or name.")
    software = serializers.CharField(
        max_length=100, help_text="Software id, or its name on the project's image."
    )
    cluster = serializers.CharField(max_length=100, help_text="Cluster id or name.")
    scenes = serializers.ListField(
        child=serializers.CharField(max_length=1024),
        min_length=1,
        max_length=100,
        help_text="Scene file URLs (file:///… or oss://bucket/…); one job per scene.",
    )
    frames = serializers.CharField(max_length=500, help_text="e.g. 1-48, 1-10,20 or 1-100x5")
    nodes = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, help_text="Spread frames over N nodes."
    )
    chunk_size = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, help_text="Or: frames per chunk."
    )
    parameters = serializers.DictField(
        child=serializers.JSONField(allow_null=True),  # null: the parameter's default
        required=False,
        default=dict,
        help_text="The software's custom parameters: {name: value}.",
    )
    priority = serializers.IntegerField(min_value=-100, max_value=100, default=0)
    test_frame_first = serializers.BooleanField(default=False)
    name = serializers.CharField(max_length=150, required=False, default="", allow_blank=True)
    force = serializers.BooleanField(
        default=False,
        help_text="Render frames outside the scene's frame range anyway (refused without it).",
    )
    allow_missing = serializers.BooleanField(
        default=False,
        help_text=(
            "Render although files the scenes need are missing or unreachable (refused "
            "without it, naming them)."
        ),
    )
    chunk_seconds = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        help_text="Or: adaptive chunks of about this many seconds of measured render time, "
        "the work left re-split as frames finish (own machines). Without nodes or "
        "chunk_size, the farm's default (RENDER_CHUNK_SECONDS).",
    )
    max_nodes = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        help_text="At most this many of its chunks run at once (own machines).",
    )
    movie = serializers.BooleanField(
        default=False,
        help_text="Also make a preview movie (H.264 MP4 in the job's output folder) of each "
        "job's frames once it finished: a job after it, shown as the job's 'movie'.",
    )
    after = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        required=False,
        default=list,
        max_length=50,
        help_text="Ids of jobs to wait for: the jobs start when these have all finished.",
    )

    def validate_parameters(self, value: dict[str, Any]) -> dict[str, Any]:
        bad = [k for k, v in value.items() if not isinstance(v, str | int | float | bool | None)]
        if bad:
            raise serializers.ValidationError(
                f"Give plain values (text, numbers, true/false) for: {', '.join(sorted(bad))}."
            )
        return value
