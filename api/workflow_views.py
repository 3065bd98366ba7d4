"""Workflow runs over the API: submit, status, calls, logs, outputs, abort.

Thin callers of workflows.services, scoped like render jobs (api.permissions).
"""

from __future__ import annotations

import base64
from typing import Any, TypeVar

from django.contrib.auth.models import User
from django.db.models import Q, QuerySet
from django.urls import reverse
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import exceptions, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from projects.models import Project
from workflows import access as workflow_access
from workflows import services as workflow_services
from workflows.choices import CallStatus, Engine, RunState
from workflows.engines import EngineError
from workflows.models import Call, WorkflowRun
from workflows.validation import MAX_WDL_BYTES, MAX_ZIP_BYTES

from . import pagination
from .pagination import paginate
from .permissions import request_user, visible_projects
from .serializers import absolute_link
from .views import CONFLICT, NOT_FOUND, Conflict, find, query, submission_errors

_Row = TypeVar("_Row")

# --- serializers ------------------------------------------------------------------------

# Fields named like Field attributes (label, source) are fine at runtime: the serializer
# metaclass moves declared fields off the class. The stubs see them as overriding
# Field.label and Field.source, hence the ignore[assignment] on those lines.


class WorkflowRunSerializer(serializers.ModelSerializer):
    project: serializers.SlugRelatedField[Project] = serializers.SlugRelatedField(
        slug_field="name", read_only=True
    )
    project_id = serializers.IntegerField(read_only=True)
    submitted_by: serializers.SlugRelatedField[User] = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )
    duration = serializers.FloatField(read_only=True, allow_null=True)
    links = serializers.SerializerMethodField()

    class Meta:
        model = WorkflowRun
        fields = (
            "id",
            "name",
            "state",
            "project",
            "project_id",
            "engine",
            "workflow_name",
            "engine_run_id",
            "engine_status",
            "failure_message",
            "warnings",
            "submitted_by",
            "resubmitted_from",
            "wdl_url",
            "dependencies_url",
            "inputs",
            "options",
            "labels",
            "working_dir",
            "outputs_dir",
            "outputs",
            "created_at",
            "started_at",
            "finished_at",
            "duration",
            "links",
        )

    @extend_schema_field(
        {"type": "object", "additionalProperties": {"type": "string", "format": "uri"}}
    )
    def get_links(self, run: WorkflowRun) -> dict[str, str]:
        request = self.context.get("request")
        links = {}
        for name in ("detail", "calls", "logs", "outputs", "abort"):
            path = reverse(f"api:workflow-{name}", args=[run.pk])
            links[name] = request.build_absolute_uri(path) if request else path
        return links


class SubmitWorkflowSerializer(serializers.Serializer):
    project = serializers.CharField(max_length=100, help_text="Project id or name.")
    wdl_source = serializers.CharField(
        required=False,
        default="",
        allow_blank=True,
        max_length=MAX_WDL_BYTES,
        trim_whitespace=False,
    )
    wdl_url = serializers.CharField(required=False, default="", allow_blank=True, max_length=1024)
    dependencies_url = serializers.CharField(
        required=False, default="", allow_blank=True, max_length=1024
    )
    dependencies_zip_base64 = serializers.CharField(
        required=False,
        default="",
        allow_blank=True,
        max_length=MAX_ZIP_BYTES * 4 // 3 + 4,
        help_text="The imported WDL files as a zip (any folder layout), base64-encoded.",
    )
    inputs = serializers.JSONField(required=False, default=dict)
    options = serializers.JSONField(required=False, default=dict)
    labels = serializers.JSONField(required=False, default=dict)
    engine = serializers.ChoiceField(choices=Engine.choices, default=Engine.MINIWDL)
    name = serializers.CharField(required=False, default="", allow_blank=True, max_length=200)
    working_dir = serializers.CharField(
        required=False, default="", allow_blank=True, max_length=1024
    )
    outputs_dir = serializers.CharField(
        required=False, default="", allow_blank=True, max_length=1024
    )


class RunFilterSerializer(serializers.Serializer):
    state = serializers.MultipleChoiceField(choices=RunState.choices, required=False)
    project = serializers.CharField(required=False, max_length=100)
    created_after = serializers.DateTimeField(required=False)
    created_before = serializers.DateTimeField(required=False)


class CallSerializer(serializers.ModelSerializer):
    label = serializers.CharField(read_only=True)  # type: ignore[assignment]  # see above
    duration = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = Call
        fields = (
            "id",
            "label",
            "name",
            "shard",
            "attempt",
            "status",
            "backend_status",
            "started_at",
            "finished_at",
            "duration",
            "return_code",
            "cache_hit",
            "cached_from",
            "failure_message",
            "stdout",
            "stderr",
        )


class CallFilterSerializer(serializers.Serializer):
    status = serializers.MultipleChoiceField(choices=CallStatus.choices, required=False)


class CallLogFilterSerializer(serializers.Serializer):
    call = serializers.IntegerField(required=False, min_value=1)
    tail_bytes = serializers.IntegerField(
        required=False, min_value=1, max_value=workflow_services.LOG_TAIL_BYTES, default=8192
    )


class CallLogStreamSerializer(serializers.Serializer):
    tail = serializers.CharField()
    source = serializers.CharField(  # type: ignore[assignment]  # see above
        help_text="Where it was read, or why it could not be."
    )
    ok = serializers.BooleanField()
    link = serializers.URLField(allow_null=True, help_text="Signed link when it is in storage.")


class CallLogsSerializer(serializers.Serializer):
    call = serializers.IntegerField(source="pk")
    label = serializers.CharField()  # type: ignore[assignment]  # see above
    status = serializers.CharField()
    stdout = serializers.SerializerMethodField()
    stderr = serializers.SerializerMethodField()

    def _stream(self, call: Call, stream: str) -> dict[str, Any]:
        log = workflow_services.read_log(call, stream, limit=self.context["tail_bytes"])
        location = call.stdout if stream == "stdout" else call.stderr
        link = absolute_link(self.context.get("request"), location) if "://" in location else None
        return {"tail": log.text, "source": log.source, "ok": log.ok, "link": link}

    @extend_schema_field(CallLogStreamSerializer)
    def get_stdout(self, call: Call) -> dict[str, Any]:
        return self._stream(call, "stdout")

    @extend_schema_field(CallLogStreamSerializer)
    def get_stderr(self, call: Call) -> dict[str, Any]:
        return self._stream(call, "stderr")


class WorkflowOutputFileSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="The workflow output, [i] for array elements.")
    url = serializers.CharField()
    link = serializers.URLField(allow_null=True)


class WorkflowOutputsSerializer(serializers.Serializer):
    files = WorkflowOutputFileSerializer(many=True)
    values = serializers.DictField(help_text="Outputs that are not files.")


class AbortResultSerializer(serializers.Serializer):
    detail = serializers.CharField()
    run = WorkflowRunSerializer()


# --- views ------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(parameters=[RunFilterSerializer]),
    retrieve=extend_schema(responses={200: WorkflowRunSerializer, 404: NOT_FOUND}),
)
class WorkflowRunViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[WorkflowRun]
):
    """Workflow runs of your projects: submit, follow, abort; calls, logs, outputs."""

    serializer_class = WorkflowRunSerializer
    pagination_class = pagination.JobCursorPagination
    queryset = WorkflowRun.objects.none()  # for the schema; get_queryset scopes every request

    def get_queryset(self) -> QuerySet[WorkflowRun]:
        return WorkflowRun.objects.filter(
            project__in=visible_projects(self.request)
        ).select_related("project", "submitted_by")

    def filter_queryset(self, queryset: QuerySet[WorkflowRun, _Row]) -> QuerySet[WorkflowRun, _Row]:
        if self.action != "list":
            return queryset
        params = query(RunFilterSerializer, self.request, lists=("state",))
        if params.get("state"):
            queryset = queryset.filter(state__in=params["state"])
        if project := params.get("project"):
            project_filter = Q(project__name=project)
            if project.isdigit():
                project_filter |= Q(project_id=int(project))
            queryset = queryset.filter(project_filter)
        if "created_after" in params:
            queryset = queryset.filter(created_at__gte=params["created_after"])
        if "created_before" in params:
            queryset = queryset.filter(created_at__lt=params["created_before"])
        return queryset

    @extend_schema(
        request=SubmitWorkflowSerializer,
        responses={
            201: WorkflowRunSerializer,
            400: OpenApiResponse(description="Invalid submission: {field: [messages]}."),
            403: OpenApiResponse(
                description="Not allowed, e.g. the miniwdl engine without "
                "the workflows.run_on_host permission: {detail}."
            ),
        },
    )
    def create(self, request: Request) -> Response:
        """Submit a WDL workflow run (workflows.services.submit)."""
        params = SubmitWorkflowSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        data = dict(params.validated_data)
        if encoded := data.pop("dependencies_zip_base64"):
            try:
                data["dependencies_zip"] = base64.b64decode(encoded, validate=True)
            except ValueError:  # binascii.Error is one; so is text that is not ASCII
                raise exceptions.ValidationError(
                    {"dependencies_zip_base64": ["This is not base64."]}
                ) from None
        project = find(visible_projects(request), data.pop("project"))
        if project is None:
            raise exceptions.ValidationError(
                {"project": [f"There is no project {request.data.get('project')!r}."]}
            )
        try:
            run = workflow_services.submit(
                workflow_services.WorkflowRequest(project=project, **data),
                user=request_user(request),
            )
        except workflow_services.NotPermitted as exc:
            raise exceptions.PermissionDenied(" ".join(exc.messages)) from None
        except workflow_services.SubmissionError as exc:
            raise exceptions.ValidationError(submission_errors(exc)) from None
        body = self.get_serializer(run).data
        return Response(
            body, status=status.HTTP_201_CREATED, headers={"Location": body["links"]["detail"]}
        )

    @extend_schema(
        parameters=[CallFilterSerializer],
        responses={200: CallSerializer(many=True), 404: NOT_FOUND},
    )
    @action(
        detail=True, serializer_class=CallSerializer, pagination_class=pagination.IdCursorPagination
    )
    def calls(self, request: Request, pk: str | None = None) -> Response:
        """The run's task calls (one row per attempt of each shard)."""
        run = self.get_object()
        params = query(CallFilterSerializer, request, lists=("status",))
        calls = run.calls.all()
        if params.get("status"):
            calls = calls.filter(status__in=params["status"])
        page = paginate(self, calls)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(
        parameters=[CallLogFilterSerializer],
        responses={200: CallLogsSerializer(many=True), 404: NOT_FOUND},
    )
    @action(
        detail=True,
        serializer_class=CallLogsSerializer,
        pagination_class=pagination.IdCursorPagination,
    )
    def logs(self, request: Request, pk: str | None = None) -> Response:
        """Per call: the ends of its stdout and stderr, and signed links when in storage."""
        run = self.get_object()
        params = query(CallLogFilterSerializer, request)
        calls = run.calls.select_related("run")
        if "call" in params:
            calls = calls.filter(pk=params["call"])
        page = paginate(self, calls)
        context = {**self.get_serializer_context(), "tail_bytes": params["tail_bytes"]}
        data = CallLogsSerializer(page, many=True, context=context).data
        return self.get_paginated_response(data)

    @extend_schema(responses={200: WorkflowOutputsSerializer, 404: NOT_FOUND})
    @action(detail=True, serializer_class=WorkflowOutputsSerializer, pagination_class=None)
    def outputs(self, request: Request, pk: str | None = None) -> Response:
        """The run's outputs: files with signed links, and the other values."""
        run = self.get_object()
        files, values = workflow_access.output_files(run)
        return Response(
            {
                "files": [
                    {"name": f.name, "url": f.url, "link": absolute_link(request, f.url)}
                    for f in files
                ],
                "values": values,
            }
        )

    @extend_schema(
        request=None,
        responses={
            200: AbortResultSerializer,
            404: NOT_FOUND,
            409: CONFLICT,
            503: OpenApiResponse(description="The engine could not be reached."),
        },
    )
    @action(detail=True, methods=["post"], pagination_class=None)
    def abort(self, request: Request, pk: str | None = None) -> Response:
        """Stop a submitted or running run (remote engines are told at once)."""
        run = self.get_object()
        try:
            aborted = workflow_services.abort(run)
        except EngineError as exc:
            return Response(
                {"detail": f"Could not abort #{run.pk}: {exc}"},
                status=status.HTTP_503_SERVICE_UNAVAILABLE,
            )
        if not aborted:
            raise Conflict(f"Workflow run #{run.pk} is {run.state}: it cannot be aborted.")
        run.refresh_from_db()
        body = {
            "detail": f"Aborting workflow run #{run.pk}.",
            "run": WorkflowRunSerializer(run, context=self.get_serializer_context()).data,
        }
        return Response(body)
