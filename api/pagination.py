from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

from django.db.models import QuerySet
from rest_framework import pagination

if TYPE_CHECKING:
    # Not at run time: rest_framework.generics imports this module (the default paginator).
    from rest_framework.generics import GenericAPIView

_Row = TypeVar("_Row")


def paginate(
    view: GenericAPIView[Any], rows: QuerySet[Any, _Row] | Sequence[_Row]
) -> list[_Row] | None:
    """``view.paginate_queryset`` for rows other than the view's model: a job's chunks and
    frames, a run's calls, a listing of files.

    The stubs tie its argument to the view's model and to querysets; DRF's paginators
    page any queryset or list.
    """
    return view.paginate_queryset(cast("QuerySet[Any, _Row]", rows))


class PageNumberPagination(pagination.PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class CursorPagination(pagination.CursorPagination):
    """Stable pages over tables that grow while a client reads them (jobs, frames)."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 1000


class JobCursorPagination(CursorPagination):
    ordering = ("-created_at", "-id")


class TaskCursorPagination(CursorPagination):
    ordering = ("index",)


class FrameCursorPagination(CursorPagination):
    ordering = ("number",)


class IdCursorPagination(CursorPagination):
    ordering = ("id",)
