"""Keyset paging of the job lists: a page costs the same at 100,000 jobs as at 100.

A page is the jobs after (or before) a cursor, the sort key of the last (first) row shown,
read with ``LIMIT n + 1``: no ``COUNT`` over every visible job and no ``OFFSET`` that
walks the rows of the pages before. The lists sort newest first on a timestamp (nulls
first: a job that ended without a time, as PostgreSQL's descending index keeps them)
then on id, so the cursor is "microseconds since the epoch or 'n', then the id".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar

from django.db.models import F, Model, Q, QuerySet

from renderhub.cli import parse_id

M = TypeVar("M", bound=Model)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class KeysetPage(Generic[M]):
    """One page of rows and the cursors of its neighbours ('' when there is none)."""

    rows: list[M] = field(default_factory=list)
    newer: str = ""  # ?before=… shows the page before this one
    older: str = ""  # ?after=… shows the page after it
    first: bool = True  # this is the newest page (no "Newest" link)


Cursor = tuple[datetime | None, int]


def encode(moment: datetime | None, pk: int) -> str:
    if moment is None:
        return f"n_{pk}"
    return f"{(moment - EPOCH) // timedelta(microseconds=1)}_{pk}"


def decode(raw: str | None) -> Cursor | None:
    """The cursor of a query string; None when absent or not one (the first page)."""
    when, _, pk_text = (raw or "").partition("_")
    pk = parse_id(pk_text)
    if not pk or not when:
        return None
    if when == "n":
        return None, pk
    if not when.isdigit() or len(when) > 17:
        return None
    return EPOCH + timedelta(microseconds=int(when)), pk


def _after(key: str, cursor: Cursor) -> Q:
    """Rows after ``cursor`` in ``key`` descending, nulls first, then id descending."""
    moment, pk = cursor
    if moment is None:
        return Q(**{f"{key}__isnull": True, "pk__lt": pk}) | Q(**{f"{key}__isnull": False})
    return Q(**{f"{key}__lt": moment}) | Q(**{key: moment, "pk__lt": pk})


def _before(key: str, cursor: Cursor) -> Q:
    moment, pk = cursor
    if moment is None:
        return Q(**{f"{key}__isnull": True, "pk__gt": pk})
    return (
        Q(**{f"{key}__isnull": True})
        | Q(**{f"{key}__gt": moment})
        | Q(**{key: moment, "pk__gt": pk})
    )


def page(
    rows: QuerySet[M], key: str, after: str | None, before: str | None, size: int
) -> KeysetPage[M]:
    """The ``size`` rows after cursor ``after`` (or before ``before``; else the newest)."""
    newest_first = [F(key).desc(nulls_first=True), F("pk").desc()]
    if (cursor := decode(before)) is not None:
        found = list(
            rows.filter(_before(key, cursor)).order_by(F(key).asc(nulls_last=True), F("pk").asc())[
                : size + 1
            ]
        )
        more_newer = len(found) > size
        found = found[:size][::-1]
        result = KeysetPage(found, first=not more_newer)
        result.older = encode(getattr(found[-1], key), found[-1].pk) if found else ""
        if more_newer:
            result.newer = encode(getattr(found[0], key), found[0].pk)
        return result
    cursor = decode(after)
    if cursor is not None:
        rows = rows.filter(_after(key, cursor))
    found = list(rows.order_by(*newest_first)[: size + 1])
    result = KeysetPage(found[:size], first=cursor is None)
    if len(found) > size:
        last = found[size - 1]
        result.older = encode(getattr(last, key), last.pk)
    if cursor is not None and result.rows:
        result.newer = encode(getattr(result.rows[0], key), result.rows[0].pk)
    return result
