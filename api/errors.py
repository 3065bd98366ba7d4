"""The API's refusals that are not validation errors, and their schema responses."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions, status

NOT_FOUND = OpenApiResponse(description="Not found (or not visible to you).")
CONFLICT = OpenApiResponse(description="Not possible in its current state.")


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


class Unavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "unavailable"
