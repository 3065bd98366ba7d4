"""``POST /api/scenes/check/``: the files scenes need and their state, before submitting."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs.dependencies import check_scene_files, report_dict

from .permissions import visible_projects
from .views import find


class SceneCheckRequest(serializers.Serializer):
    project = serializers.CharField(help_text="The project's name or id.")
    scenes = serializers.ListField(
        child=serializers.CharField(max_length=1024),
        min_length=1,
        max_length=50,
        help_text="Scene URLs inside the project's storage mappings.",
    )


class SceneCheckView(APIView):
    """What each scene needs (images, sequences, UDIM sets, libraries followed recursively,
    sounds, caches…), each with its state: in storage, translated by a mapping, missing,
    outside the project's mappings, or an absolute path nothing translates. For members of
    the project; nothing is submitted."""

    @extend_schema(
        request=SceneCheckRequest,
        responses={
            200: inline_serializer(
                "SceneCheck",
                {"ok": serializers.BooleanField(), "scenes": serializers.JSONField()},
            )
        },
    )
    def post(self, request: Request) -> Response:
        params = SceneCheckRequest(data=request.data)
        params.is_valid(raise_exception=True)
        project = find(visible_projects(request), params.validated_data["project"])
        if project is None:
            raise exceptions.NotFound("There is no such project (or it is not yours).")
        try:
            reports = check_scene_files(project, params.validated_data["scenes"])
        except ValueError as exc:
            raise exceptions.ValidationError({"scenes": [str(exc)]}) from None
        scenes = [report_dict(r) for r in reports]
        return Response({"ok": all(s["ok"] for s in scenes), "scenes": scenes})
