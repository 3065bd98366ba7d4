from __future__ import annotations

from rest_framework import pagination


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
