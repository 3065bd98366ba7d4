"""The event drain's bulk writes: one SQL statement for a whole batch's rows of a kind.

The ORM's ``bulk_update`` builds a CASE expression per field and row, and an ``update``
per chunk costs a query plus its compilation; at a thousand nodes that Python was most of
the drain's time. These statements join the table to a ``VALUES`` list instead
(``UPDATE … FROM``: PostgreSQL, and SQLite since 3.33), keep the same guards (a frame
done only once, a heartbeat never moved back, only running chunks written) and run in the
caller's transaction. Only table and column names of our own models are put into the SQL
text (hence the S608 notes); every value is a parameter.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import connection

from . import machine_share
from .choices import FrameState, TaskState
from .models import Frame, Task

ROWS_PER_STATEMENT = 500  # parameters stay far below SQLite's and PostgreSQL's limits

# What a NULL in a VALUES column is, on PostgreSQL (a column of NULLs alone is text there).
PG_TYPES = {"int": "integer", "float": "double precision", "time": "timestamptz", "text": "text"}


def _values(
    rows: Sequence[Sequence[Any]], names: Sequence[str], types: Sequence[str]
) -> tuple[str, list[Any]]:
    """``(SELECT column1 AS a, … FROM (VALUES (…), …)) AS v`` and its parameters."""
    postgres = connection.vendor == "postgresql"
    cell = [f"CAST(%s AS {PG_TYPES[t]})" if postgres else "%s" for t in types]
    row_sql = "(" + ", ".join(cell) + ")"
    params: list[Any] = []
    for row in rows:
        params += [
            connection.ops.adapt_datetimefield_value(value) if kind == "time" else value
            for value, kind in zip(row, types, strict=True)
        ]
    columns = ", ".join(f"column{i + 1} AS {name}" for i, name in enumerate(names))
    listed = ", ".join([row_sql] * len(rows))
    sql = f"(SELECT {columns} FROM (VALUES {listed}) AS vv) AS v"  # noqa: S608
    return sql, params


def _chunks(rows: Sequence[Any]) -> list[Sequence[Any]]:
    return [rows[i : i + ROWS_PER_STATEMENT] for i in range(0, len(rows), ROWS_PER_STATEMENT)]


def start_frames(frames: Sequence[tuple[int, int]], now: datetime) -> None:
    """Mark queued frames ``(task_id, number)`` running: a chunk's own frames only."""
    table = Frame._meta.db_table
    for part in _chunks(frames):
        source, params = _values(part, ("task_id", "number"), ("int", "int"))
        sql = (
            f"UPDATE {table} SET state = %s, started_at = %s FROM {source} "  # noqa: S608
            f"WHERE {table}.task_id = v.task_id AND {table}.number = v.number "
            f"AND {table}.state = %s"
        )
        started = connection.ops.adapt_datetimefield_value(now)
        with connection.cursor() as cursor:
            cursor.execute(sql, [FrameState.RUNNING, started, *params, FrameState.QUEUED])


def finish_frames(
    frames: Sequence[tuple[int, int, float, str, str]], now: datetime
) -> dict[int, tuple[int, float]]:
    """Mark frames ``(task_id, number, seconds, output_url, thumbnail_url)`` done, each once
    (not one done, failed or cancelled already) and only their own chunk's, with their
    full-node cost (``machine_share``); per job, how many and their seconds."""
    table = Frame._meta.db_table
    ended = [FrameState.DONE, FrameState.FAILED, FrameState.CANCELLED]
    per_job: dict[int, tuple[int, float]] = defaultdict(lambda: (0, 0.0))
    for part in _chunks(frames):
        costs = machine_share.full_node_costs([row[:3] for row in part])
        rows = [(*row, costs[(row[0], row[1])]) for row in part]
        source, params = _values(
            rows,
            ("task_id", "number", "seconds", "output_url", "thumbnail_url", "cost_seconds"),
            ("int", "int", "float", "text", "text", "float"),
        )
        sql = (
            f"UPDATE {table} SET state = %s, finished_at = %s, seconds = v.seconds, "  # noqa: S608
            "cost_seconds = v.cost_seconds, output_url = v.output_url, "
            "thumbnail_url = v.thumbnail_url, failure_reason = '' "
            f"FROM {source} WHERE {table}.task_id = v.task_id AND {table}.number = v.number "
            f"AND {table}.state NOT IN (%s, %s, %s) RETURNING {table}.job_id, {table}.seconds"
        )
        finished = connection.ops.adapt_datetimefield_value(now)
        with connection.cursor() as cursor:
            cursor.execute(sql, [FrameState.DONE, finished, *params, *ended])
            for job_id, seconds in cursor.fetchall():
                count, total = per_job[job_id]
                per_job[job_id] = (count + 1, total + float(seconds or 0.0))
    return dict(per_job)


TASK_FIELDS = (
    ("current_frame", "int"),
    ("heartbeat_at", "time"),
    ("cpu_percent", "float"),
    ("agent_log_tail", "text"),
    ("stdout_tail", "text"),
    ("stderr_tail", "text"),
)


def update_running_tasks(values: dict[int, dict[str, Any]]) -> None:
    """Write each running chunk's new values (a field it did not report is kept); a chunk
    whose heartbeat in the database is newer than the one reported is left alone."""
    table = Task._meta.db_table
    names = [name for name, _ in TASK_FIELDS]
    types = ["int", *(kind for _, kind in TASK_FIELDS)]
    rows = [(pk, *(changed.get(name) for name in names)) for pk, changed in values.items()]
    assignments = ", ".join(f"{name} = COALESCE(v.{name}, {table}.{name})" for name in names)
    for part in _chunks(rows):
        source, params = _values(part, ("id", *names), types)
        sql = (
            f"UPDATE {table} SET {assignments} FROM {source} "  # noqa: S608
            f"WHERE {table}.id = v.id AND {table}.state = %s AND (v.heartbeat_at IS NULL "
            f"OR {table}.heartbeat_at IS NULL OR {table}.heartbeat_at < v.heartbeat_at)"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [*params, TaskState.RUNNING])
