"""The render job actions of the REST API (cancel, pause, resume, priority, retry): a mixin of
api.views.RenderJobViewSet, each a thin caller of one jobs.services function."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers as drf
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from jobs import services as job_services
from jobs.models import RenderJob
from jobs.scheduling import PRIORITY_RANGE

from . import serializers
from .errors import CONFLICT, NOT_FOUND, Conflict
from .permissions import request_user


class PrioritySerializer(drf.Serializer):
    priority = drf.IntegerField(
        min_value=PRIORITY_RANGE[0], max_value=PRIORITY_RANGE[1], help_text="Higher first."
    )


class JobActionsMixin:
    get_object: Any
    get_serializer_context: Any

    def _result(
        self, job: RenderJob, detail: str, count: int, warnings: tuple[str, ...] = ()
    ) -> Response:
        job.refresh_from_db()
        context = self.get_serializer_context()
        return Response(
            {
                "detail": detail,
                "warnings": list(warnings),
                "tasks": count,
                "job": serializers.RenderJobSerializer(job, context=context).data,
            }
        )

    def _outcome(self, job: RenderJob, outcome: Any) -> Response:
        """A service's outcome as the API answers it: refused (409) or done."""
        if not outcome.ok:
            raise Conflict(outcome.message)
        return self._result(job, outcome.message, outcome.count, outcome.warnings)

    @extend_schema(
        request=serializers.CancelSerializer,
        responses={200: serializers.ActionResultSerializer, 404: NOT_FOUND, 409: CONFLICT},
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        """Cancel a queued or running job; running renderers are stopped by their workers.
        With ``cascade``, the jobs waiting for it are cancelled too.

        ``warnings`` says when the job is cancelled but its BatchCompute job could not be
        stopped yet (each poll tries again)."""
        job = self.get_object()
        params = serializers.CancelSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        outcome = job_services.cancel_job(job, cascade=params.validated_data["cascade"])
        return self._outcome(job, outcome)

    @extend_schema(
        request=serializers.PauseSerializer,
        responses={200: serializers.ActionResultSerializer, 404: NOT_FOUND, 409: CONFLICT},
    )
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk: str | None = None) -> Response:
        """Start no new chunk of the job; running chunks finish, or with ``now`` stop and
        are queued again (their finished frames are kept)."""
        job = self.get_object()
        params = serializers.PauseSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        outcome = job_services.pause_job(job, now=params.validated_data["now"])
        return self._outcome(job, outcome)

    @extend_schema(
        request=None,
        responses={200: serializers.ActionResultSerializer, 404: NOT_FOUND, 409: CONFLICT},
    )
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str | None = None) -> Response:
        """Let a paused job's chunks start again."""
        job = self.get_object()
        outcome = job_services.resume_job(job)
        return self._outcome(job, outcome)

    @extend_schema(
        request=PrioritySerializer,
        responses={200: serializers.ActionResultSerializer, 404: NOT_FOUND, 409: CONFLICT},
    )
    @action(detail=True, methods=["post"])
    def priority(self, request: Request, pk: str | None = None) -> Response:
        """Change an active job's priority: the next free node slot of its cluster goes to
        the highest-priority job."""
        job = self.get_object()
        params = PrioritySerializer(data=request.data)
        params.is_valid(raise_exception=True)
        priority = params.validated_data["priority"]
        outcome = job_services.set_priority(job, priority, request_user(request))
        return self._outcome(job, outcome)

    @extend_schema(
        request=None,
        responses={200: serializers.ActionResultSerializer, 404: NOT_FOUND, 409: CONFLICT},
    )
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, pk: str | None = None) -> Response:
        """Render the failed and cancelled chunks of an ended job again."""
        job = self.get_object()
        if job.is_active:
            raise Conflict(f"Job #{job.pk} is still {job.state}; retry it once it has ended.")
        count = job_services.retry_job(job)
        if not count:
            raise Conflict(f"Job #{job.pk} has no failed or cancelled chunks to retry.")
        return self._result(job, f"Job #{job.pk}: {count} chunks queued again.", count)
