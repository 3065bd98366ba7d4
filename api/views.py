"""REST endpoints: thin callers of the domain services, scoped by api.permissions."""

from __future__ import annotations

from typing import Any, TypeVar

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Model, Q, QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from clusters import services as cluster_services
from clusters.models import Cluster
from images.models import ComputeImage, Software
from jobs import services as job_services
from jobs.models import RenderJob
from jobs.outputs import list_outputs
from projects.models import Project
from renderhub import storage
from renderhub.batchcompute import BatchComputeError
from renderhub.compute import ComputeError

from . import pagination, serializers
from . import services as api_services
from .conditional import ConditionalJobsMixin
from .errors import CONFLICT as CONFLICT
from .errors import NOT_FOUND as NOT_FOUND
from .errors import Conflict as Conflict
from .errors import Unavailable as Unavailable
from .job_actions import JobActionsMixin
from .models import ApiToken
from .pagination import paginate
from .permissions import request_user, visible_jobs, visible_projects

SUSPENSION_RESPONSES = {
    200: serializers.ClusterSerializer,
    403: OpenApiResponse(description="Needs the change-cluster permission."),
    404: NOT_FOUND,
    409: CONFLICT,
}

_M = TypeVar("_M", bound=Model)
_Row = TypeVar("_Row")


def find(queryset: QuerySet[_M], value: str) -> _M | None:
    """The object with this id, else the one with this name, in ``queryset``; or None."""
    value = value.strip()
    if value.isdigit() and (found := queryset.filter(pk=int(value)).first()) is not None:
        return found
    return queryset.filter(name=value).first()


def query(serializer_class: type[Any], request: Request, lists: tuple[str, ...] = ()) -> Any:
    """Validated query parameters; ``lists`` may repeat or hold comma-separated values."""
    data: dict[str, Any] = {k: request.query_params.get(k) for k in request.query_params}
    for name in lists:
        values = [v for raw in request.query_params.getlist(name) for v in raw.split(",") if v]
        if values:
            data[name] = values
    params = serializer_class(data=data)
    params.is_valid(raise_exception=True)
    return params.validated_data


def submission_errors(exc: DjangoValidationError) -> dict[str, list[str]]:
    if hasattr(exc, "error_dict"):
        return {
            ("non_field_errors" if k == "__all__" else k): v for k, v in exc.message_dict.items()
        }
    return {"non_field_errors": exc.messages}


# --- Catalogue --------------------------------------------------------------------------


class ProjectViewSet(viewsets.ReadOnlyModelViewSet):
    """Projects you are a member of (all of them for superusers)."""

    serializer_class = serializers.ProjectSerializer
    queryset = Project.objects.none()  # for the schema; get_queryset scopes every request

    def get_queryset(self) -> QuerySet[Any]:
        return visible_projects(self.request).select_related("image").prefetch_related("mappings")


class ComputeImageViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = serializers.ComputeImageSerializer
    queryset = ComputeImage.objects.all()


class SoftwareViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = serializers.SoftwareSerializer
    queryset = Software.objects.select_related("image")


class ClusterViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = serializers.ClusterSerializer
    queryset = Cluster.objects.prefetch_related("nodes")

    @extend_schema(
        request=serializers.ResizeSerializer,
        responses={
            200: serializers.ClusterSerializer,
            400: OpenApiResponse(description="Invalid size (e.g. more than its max nodes)."),
            403: OpenApiResponse(description="Needs the change-cluster permission."),
            404: NOT_FOUND,
            409: OpenApiResponse(description="Not possible in its state (deleted, not created)."),
            503: OpenApiResponse(description="BatchCompute could not be reached; try again."),
        },
    )
    @action(detail=True, methods=["post"])
    def resize(self, request: Request, pk: str | None = None) -> Response:
        """Set the number of nodes the cluster should run (clusters.services.resize)."""
        cluster = self.get_object()
        if not request.user.has_perm("clusters.change_cluster"):
            raise exceptions.PermissionDenied("Resizing clusters needs the change-cluster right.")
        params = serializers.ResizeSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        nodes = params.validated_data["desired_nodes"]
        try:
            cluster_services.resize(cluster, nodes, user=request_user(request))
        except DjangoValidationError as exc:
            raise exceptions.ValidationError(submission_errors(exc)) from None
        except ComputeError as exc:
            # An outage is not a refusal: the same request may work later.
            outage = isinstance(exc, BatchComputeError) and exc.transient
            raise (Unavailable if outage else Conflict)(str(exc)) from None
        cluster.refresh_from_db()
        return Response(self.get_serializer(cluster).data)

    @extend_schema(request=None, responses=SUSPENSION_RESPONSES)
    @action(detail=True, methods=["post"])
    def suspend(self, request: Request, pk: str | None = None) -> Response:
        """Suspend the cluster for maintenance: its nodes take no new chunks."""
        return self._suspension(request, cluster_services.suspend)

    @extend_schema(request=None, responses=SUSPENSION_RESPONSES)
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str | None = None) -> Response:
        """Resume a suspended cluster: its nodes take chunks again."""
        return self._suspension(request, cluster_services.resume)

    def _suspension(self, request: Request, operation: Any) -> Response:
        cluster = self.get_object()
        if not request.user.has_perm("clusters.change_cluster"):
            raise exceptions.PermissionDenied("Suspending clusters needs the change-cluster right.")
        outcome = operation(cluster, user=request_user(request))
        if not outcome.ok:
            raise Conflict(outcome.message)
        cluster.refresh_from_db()
        return Response(self.get_serializer(cluster).data)


# --- Render jobs ------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(parameters=[serializers.JobFilterSerializer]),
    retrieve=extend_schema(responses={200: serializers.RenderJobSerializer, 404: NOT_FOUND}),
)
class RenderJobViewSet(
    ConditionalJobsMixin,
    JobActionsMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet[RenderJob],
):
    """Render jobs of your projects: submit, follow, cancel, retry; tasks, frames, logs, outputs."""

    serializer_class = serializers.RenderJobSerializer
    pagination_class = pagination.JobCursorPagination
    queryset = RenderJob.objects.none()  # for the schema; get_queryset scopes every request

    def get_queryset(self) -> QuerySet[RenderJob]:
        return (
            visible_jobs(self.request)
            .select_related("project", "software__image", "cluster", "submitted_by")
            .prefetch_related("after", "movies")  # one query each for a page of jobs
        )

    def filter_queryset(self, queryset: QuerySet[RenderJob, _Row]) -> QuerySet[RenderJob, _Row]:
        if self.action != "list":
            return queryset
        params = query(serializers.JobFilterSerializer, self.request, lists=("state",))
        if params.get("state"):
            queryset = queryset.filter(state__in=params["state"])
        if project := params.get("project"):
            # Only visible projects are in the queryset: another project's name finds nothing.
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
        request=serializers.SubmitRenderSerializer,
        responses={
            201: serializers.SubmissionSerializer,
            400: OpenApiResponse(description="Invalid submission: {field: [messages]}."),
        },
    )
    def create(self, request: Request) -> Response:
        """Submit a render: one job per scene (jobs.services.submit_render)."""
        params = serializers.SubmitRenderSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        errors: dict[str, list[str]] = {}
        project = find(visible_projects(request).select_related("image"), data["project"])
        if project is None:
            errors["project"] = [f"There is no project {data['project']!r}."]
        cluster = find(Cluster.objects.all(), data["cluster"])
        if cluster is None:
            errors["cluster"] = [f"There is no cluster {data['cluster']!r}."]
        software = None
        if project is not None:
            # Names are unique per image, so a name means the project's image's software;
            # an id may name any (submit_render then says it is not on the project's image).
            value = data["software"].strip()
            software = find(Software.objects.filter(image_id=project.image_id), value)
            if software is None and value.isdigit():
                software = Software.objects.filter(pk=int(value)).first()
            if software is None:
                errors["software"] = [
                    f"There is no software {data['software']!r} on this project's image."
                ]
        if errors:
            raise exceptions.ValidationError(errors)
        assert project is not None and software is not None and cluster is not None  # else errors
        render = job_services.RenderRequest(
            project=project,
            software=software,
            cluster=cluster,
            scenes=data["scenes"],
            frames=data["frames"],
            nodes=data.get("nodes"),
            chunk_size=data.get("chunk_size"),
            parameters=data.get("parameters") or {},
            priority=data["priority"],
            test_frame_first=data["test_frame_first"],
            name=data.get("name", ""),
            force=data["force"],
            allow_missing=data["allow_missing"],
            after=data["after"],
            movie=data["movie"],
            max_nodes=data.get("max_nodes"),
            chunk_seconds=data.get("chunk_seconds"),
        )
        try:
            jobs = job_services.submit_render(render, user=request_user(request))
        except job_services.SubmissionError as exc:
            raise exceptions.ValidationError(submission_errors(exc)) from None
        body: dict[str, Any] = {
            "submission": jobs[0].submission,
            "jobs": serializers.RenderJobSerializer(
                jobs, many=True, context=self.get_serializer_context()
            ).data,
            "warnings": jobs.warnings,
        }
        headers = {"Location": body["jobs"][0]["links"]["detail"]}
        return Response(body, status=status.HTTP_201_CREATED, headers=headers)

    @extend_schema(responses={200: serializers.TaskSerializer(many=True), 404: NOT_FOUND})
    @action(
        detail=True,
        serializer_class=serializers.TaskSerializer,
        pagination_class=pagination.TaskCursorPagination,
    )
    def tasks(self, request: Request, pk: str | None = None) -> Response:
        """The job's chunks: state, node, attempts, timings, failure reasons."""
        job = self.get_object()
        page = paginate(self, job.tasks.all())
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(
        parameters=[serializers.FrameFilterSerializer],
        responses={200: serializers.FrameSerializer(many=True), 404: NOT_FOUND},
    )
    @action(
        detail=True,
        serializer_class=serializers.FrameSerializer,
        pagination_class=pagination.FrameCursorPagination,
    )
    def frames(self, request: Request, pk: str | None = None) -> Response:
        """Every frame with its state and, once done, signed links to it and its thumbnail."""
        job = self.get_object()
        params = query(serializers.FrameFilterSerializer, request, lists=("state",))
        frames = job.frame_set.select_related("task")
        if params.get("state"):
            frames = frames.filter(state__in=params["state"])
        page = paginate(self, frames)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(
        parameters=[serializers.LogFilterSerializer],
        responses={200: serializers.TaskLogsSerializer(many=True), 404: NOT_FOUND},
    )
    @action(
        detail=True,
        serializer_class=serializers.TaskLogsSerializer,
        pagination_class=pagination.TaskCursorPagination,
    )
    def logs(self, request: Request, pk: str | None = None) -> Response:
        """Per chunk: the tails of its agent, stdout and stderr logs, and links to the files."""
        job = self.get_object()
        params = query(serializers.LogFilterSerializer, request)
        tasks = job.tasks.all()
        if "task" in params:
            tasks = tasks.filter(index=params["task"])
        page = paginate(self, tasks)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(
        responses={
            200: serializers.OutputSerializer(many=True),
            404: NOT_FOUND,
            503: OpenApiResponse(description="Storage could not be read."),
        }
    )
    @action(
        detail=True,
        serializer_class=serializers.OutputSerializer,
        pagination_class=pagination.PageNumberPagination,
    )
    def outputs(self, request: Request, pk: str | None = None) -> Response:
        """The files in the job's output folder, with signed download links."""
        job = self.get_object()
        try:
            outputs = list_outputs(job)
        except storage.NotFound:
            outputs = []
        except storage.StorageError as exc:
            return Response(
                {"detail": f"Could not list the outputs: {exc}"},
                status=status.HTTP_503_SERVICE_UNAVAILABLE,
            )
        page = paginate(self, outputs)
        rows = [
            {
                "name": o.name,
                "size": o.size,
                "url": o.url,
                "link": serializers.absolute_link(request, o.url),
            }
            for o in page or []
        ]
        return self.get_paginated_response(self.get_serializer(rows, many=True).data)


# --- Tokens -----------------------------------------------------------------------------


@extend_schema_view(
    retrieve=extend_schema(responses={200: serializers.ApiTokenSerializer, 404: NOT_FOUND}),
    destroy=extend_schema(responses={204: None, 404: NOT_FOUND}),
)
class ApiTokenViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet[ApiToken],
):
    """Your API tokens. Create one here while logged in; DELETE revokes it."""

    serializer_class = serializers.ApiTokenSerializer
    queryset = ApiToken.objects.none()

    def get_queryset(self) -> QuerySet[ApiToken]:
        return ApiToken.objects.filter(user=request_user(self.request)).select_related("project")

    def get_serializer_class(self) -> type[Any]:
        return (
            serializers.CreateTokenSerializer
            if self.action == "create"
            else serializers.ApiTokenSerializer
        )

    @extend_schema(
        request=serializers.CreateTokenSerializer,
        responses={
            201: serializers.NewTokenSerializer,
            400: OpenApiResponse(description="Invalid."),
            403: OpenApiResponse(description="Tokens are created with a login session only."),
        },
    )
    def create(self, request: Request) -> Response:
        """A new token; its key is in this response only."""
        if isinstance(request.auth, ApiToken):
            # A leaked key must not be able to mint keys that outlive its revocation.
            raise exceptions.PermissionDenied("Create tokens while logged in, not with a token.")
        params = serializers.CreateTokenSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        project = None
        if data.get("project"):
            project = find(visible_projects(request), data["project"])
            if project is None:
                raise exceptions.ValidationError(
                    {"project": [f"There is no project {data['project']!r}."]}
                )
        try:
            token, key = api_services.create_token(
                request_user(request),
                data["name"],
                expires_at=data.get("expires_at"),
                project=project,
            )
        except DjangoValidationError as exc:
            raise exceptions.ValidationError(submission_errors(exc)) from None
        body = {**serializers.ApiTokenSerializer(token).data, "key": key}
        return Response(body, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: Model) -> None:
        assert isinstance(instance, ApiToken)
        api_services.revoke_token(instance)
