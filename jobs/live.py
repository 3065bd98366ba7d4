"""Versions of the live partials: a poll whose state has not moved costs one query.

Each polled partial (the job page, the running list, the dashboard's running panel, a
chunk's live log) has a version function: ONE indexed query that applies the same
permission filter as the page and reads the counters and timestamps the page shows. Its
digest is the partial's ETag; a poll sending it back (``If-None-Match``) gets a bodiless
304 before any template or frame is read (``renderhub.htmx.not_modified``).

What moves a version (every writer already touches one of these):

- the job row: state, frame counters (``frames_done`` / ``frames_failed``, kept by the
  services), start and end times, priority, pause and waiting;
- its chunks: how many are in each state, attempts, the current frames (a frame starting),
  and the latest heartbeat (CPU and log tails are written with it), start, end and queue
  times;
- not the clock: elapsed times and ETAs are instants the browser counts from, and the API
  sends the instants (``started_at``, ``eta_at``) beside its numbers, so the minute turning
  reaches no viewer (it used to reach every one of them at once).

The job page's frame grid is sent as a delta: the states string of each version is kept in
the cache for a few minutes (shared by every viewer and every server process), and a poll
from version A to version B gets only the cells that differ (``grid_update``), or the
whole string when A is no longer cached. What reads every frame of a job (counts per
chunk, the ETA, the grid) and the job's rendered partial are made once per version for
all viewers (``frame_summary``, ``etas``, ``job_partial``), and a job that moves many
times a second is re-made at most every ``COALESCE_SECONDS`` (``coalesce``). The REST
API's job list and detail use the same versions (``api.conditional``).
"""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING

from django.core.cache import cache
from django.db import connection
from django.db.models import Count, Max, Q, QuerySet, Sum
from django.db.models.expressions import RawSQL
from django.http import HttpRequest
from django.middleware.csrf import get_token
from django.template.loader import render_to_string

from renderhub.htmx import client_etag, poll_etag

from . import timing
from .choices import ACTIVE_JOB_STATES, JobState, TaskState
from .models import RenderJob, Task

if TYPE_CHECKING:
    from .queries import TaskCounts, User
    from .timing import Eta

    FrameSummary = tuple[TaskCounts, Eta | None, float]  # + when the ETA was reckoned

# A version's grid states stay this long in the cache: pollers two seconds apart, and a
# tab in the background that comes back, still get a delta.
GRID_CACHE_SECONDS = 300
CLOCK_SECONDS = 60  # active jobs' "elapsed" and ETA: re-sent at least once a minute

_LETTERS = {"queued": "q", "running": "r", "done": "d", "failed": "f", "cancelled": "c"}


def _clock(active: bool) -> int:
    return int(time.time() // CLOCK_SECONDS) if active else 0


def _text(expression: str) -> str:
    return f"COALESCE(CAST({expression} AS TEXT), '-')"


# A job's chunks summed up in one correlated subquery, as one text: raw SQL (portable to
# SQLite) so that a poll does not pay the ORM's compiling of a dozen aggregates.
_CHUNKS = " || ',' || ".join(
    [
        _text("COUNT(*)"),
        _text("SUM(attempts)"),
        _text("SUM(current_frame)"),
        _text("MAX(heartbeat_at)"),
        _text("MAX(started_at)"),
        _text("MAX(finished_at)"),
        _text("MAX(queued_at)"),
        *(
            _text(f"SUM(CASE WHEN state = '{state.value}' THEN 1 ELSE 0 END)")
            for state in TaskState
        ),
    ]
)
TASK_SUMMARY = f"SELECT {_CHUNKS} FROM jobs_task WHERE jobs_task.job_id = jobs_renderjob.id"  # noqa: S608


def job_version(user: User, pk: int, jobs: QuerySet[RenderJob] | None = None) -> str | None:
    """The job page's ETag; None when ``user`` may not see the job (the page 404s).

    One narrow query: the job through the pages' visibility filter (or ``jobs``, already
    filtered to what the caller may see), its chunks summed up.
    """
    chunks = RawSQL(TASK_SUMMARY, ())  # noqa: S611  (constant SQL, no parameters)
    found = list(
        (RenderJob.objects.visible_to(user) if jobs is None else jobs)
        .filter(pk=pk)
        .order_by()
        .annotate(chunks=chunks)
        .values_list(
            "state",
            "frames_done",
            "frames_failed",
            "started_at",
            "finished_at",
            "priority",
            "paused_at",  # pause, resume, waiting for other jobs: the page's buttons change
            "waiting",
            "hold_reason",
            "chunks",
        )[:1]
    )
    if not found:
        return None
    # No clock: the page counts "elapsed" and the ETA down in the browser (static/js/app.js)
    # from the instants it was given, so the minute no longer reaches every viewer at once.
    return poll_etag("job", pk, found[0])


def job_versions(ids: list[int]) -> dict[int, str]:
    """The version of each job (no permission filter: for jobs already filtered), in one
    query; it moves with everything a job's ETA reads but the clock and the nodes."""
    rows = (
        RenderJob.objects.filter(pk__in=ids)
        .order_by()
        .annotate(chunks=RawSQL(TASK_SUMMARY, ()))  # noqa: S611  (constant SQL)
        .values_list("pk", "state", "frames_done", "frames_failed", "render_seconds", "chunks")
    )
    return {row[0]: poll_etag("eta", row[1:], _clock(row[1] in ACTIVE_JOB_STATES)) for row in rows}


def reckoned_etas(jobs: list[RenderJob]) -> dict[int, tuple[Eta, float]]:
    """``timing.etas`` with when each was reckoned (``time.time()``), kept per job version:
    a running job's ETA counts its open frames (100,000 rows for a big job), so the lists,
    the dashboard and the API, polled by many, compute it once per change of the job (or
    per minute) instead of once per request. Pages and the API show the instant an ETA
    ends, which clients count down to."""
    active = [job for job in jobs if job.state in ACTIVE_JOB_STATES]
    if not active:
        return {}
    versions = job_versions([job.pk for job in active])
    keys = {job.pk: f"rh:eta:{job.pk}:{versions.get(job.pk, '').strip(chr(34))}" for job in active}
    found = {pk: value for pk, value in cache.get_many(list(keys.values())).items()}
    result: dict[int, tuple[Eta, float]] = {}
    missing = []
    for job in active:
        kept = found.get(keys[job.pk])
        if isinstance(kept, tuple) and len(kept) == 2 and isinstance(kept[0], timing.Eta):
            result[job.pk] = kept
        else:
            missing.append(job)
    if missing:
        now = time.time()
        computed = {pk: (eta, now) for pk, eta in timing.etas(missing).items()}
        cache.set_many({keys[pk]: value for pk, value in computed.items()}, GRID_CACHE_SECONDS)
        result.update(computed)
    return result


def jobs_version(user: User, jobs: QuerySet[RenderJob], tag: str) -> str:
    """A list of jobs (the running list, the dashboard's panel, the API's list): one
    aggregate. ``jobs`` is already filtered to the jobs the list shows (and the user may
    see); which jobs are in it, their states and counters make the version."""
    summary = jobs.order_by().aggregate(
        count=Count("id"),
        last=Max("id"),
        ids=Sum("id"),
        done=Sum("frames_done"),
        failed=Sum("frames_failed"),
        started=Max("started_at"),
        finished=Max("finished_at"),
        paused=Count("id", filter=Q(paused_at__isnull=False)),
        priority=Sum("priority"),
        **{f"n_{state.value}": Count("id", filter=Q(state=state)) for state in JobState},
    )
    return poll_etag(tag, user.pk, sorted(summary.items()))


def task_version(user: User, job_pk: int, index: int) -> str | None:
    """A chunk's live log: the task row (its tails are written with each heartbeat, a new
    attempt moves ``attempts``); None when ``user`` may not see the job."""
    visible = RenderJob.objects.visible_to(user).filter(pk=job_pk).values("pk")
    row = list(
        Task.objects.filter(job_id=job_pk, index=index, job__in=visible)
        .order_by()
        .values_list("state", "attempts", "heartbeat_at", "finished_at", "log_url", "node")[:1]
    )
    return poll_etag("log", job_pk, index, row[0]) if row else None


# --- the frame grid as a delta ----------------------------------------------------------


def frame_states(job: RenderJob) -> str:
    """One letter per frame in frame order, built by the database on PostgreSQL (one row
    back for 100,000 frames) and from one narrow query elsewhere."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT string_agg(CASE state WHEN 'running' THEN 'r' WHEN 'done' THEN 'd' "
                "WHEN 'failed' THEN 'f' WHEN 'cancelled' THEN 'c' ELSE 'q' END, '' "
                "ORDER BY number) FROM jobs_frame WHERE job_id = %s",
                [job.pk],
            )
            return str(cursor.fetchone()[0] or "")
    rows = job.frame_set.order_by("number").values_list("state", flat=True)
    return "".join(_LETTERS.get(state, "q") for state in rows)


def _grid_key(pk: int, etag: str) -> str:
    return f"rh:grid:{pk}:{etag.strip(chr(34))}"


def grid_states(job: RenderJob, etag: str) -> str:
    """The grid at version ``etag``: read once per version, whoever polls first."""
    key = _grid_key(job.pk, etag)
    states = cache.get(key)
    if not isinstance(states, str):
        states = frame_states(job)
        cache.set(key, states, GRID_CACHE_SECONDS)
    return states


def frame_summary(job: RenderJob, etag: str) -> FrameSummary:
    """The job page's parts that read every frame (counts per chunk and state, the ETA and
    when it was reckoned: the page shows its end as an instant), once per version for all."""
    from .queries import frame_counts

    key = f"{_grid_key(job.pk, etag)}:sum"
    found = cache.get(key)
    if not isinstance(found, tuple) or len(found) != 3:
        found = (dict(frame_counts(job)), timing.eta(job), time.time())
        cache.set(key, found, GRID_CACHE_SECONDS)
    per_task, eta, at = found
    return Counter(per_task), eta, at


def frame_ranges(numbers: list[int]) -> str:
    """Frame numbers (ascending) in frame-spec syntax: ``1-100000``, ``1-10,20,30-90x5``.

    The job page sends this and the states string instead of one cell per frame; the
    browser expands it (``static/js/app.js``). Runs of three or more with one step (or two
    neighbours) become a range, so a 100,000-frame job is a few characters."""
    parts: list[str] = []
    i, n = 0, len(numbers)
    while i < n:
        start = numbers[i]
        if i + 1 < n:
            step = numbers[i + 1] - start
            j = i + 1
            while j + 1 < n and numbers[j + 1] - numbers[j] == step:
                j += 1
            if j - i >= 2 or step == 1:
                parts.append(f"{start}-{numbers[j]}" + (f"x{step}" if step != 1 else ""))
                i = j + 1
                continue
        parts.append(str(start))
        i += 1
    return ",".join(parts)


def grid_frames(job: RenderJob, count: int) -> str:
    """The job's frame numbers as ranges (``frame_ranges``), read once per job and frame
    count: a job's frames keep their numbers, so this outlives the versions."""
    from .queries import frame_numbers

    key = f"rh:gridframes:{job.pk}:{count}"
    ranges = cache.get(key)
    if not isinstance(ranges, str):
        ranges = frame_ranges(frame_numbers(job))
        cache.set(key, ranges, 3600)
    return ranges


def grid_changes(old: str, new: str) -> str:
    """The cells that differ, as "index+letter" words: "17d 18r 402f"."""
    return " ".join(f"{i}{b}" for i, (a, b) in enumerate(zip(old, new, strict=True)) if a != b)


def grid_update(job: RenderJob, etag: str, since: str) -> str:
    """The grid's part of the live partial, as attributes: ``data-changes`` from the
    version the poller holds when it is still cached (and the grid kept its size), else
    every cell's letter in ``data-states``. Letters, digits and spaces: nothing to escape.
    """
    states = grid_states(job, etag)
    old = cache.get(_grid_key(job.pk, since)) if since else None
    if isinstance(old, str) and len(old) == len(states):
        changes = grid_changes(old, states)
        return f' data-changes="{changes}"' if changes else ""
    return f' data-states="{states}"'


# --- the job page's live partial, rendered once per version ----------------------------

# Placeholders in the cached partial, filled per request: the requester's CSRF token (its
# forms post cancel, requeue, …) and the grid's changes since the version it holds.
_CSRF_SLOT = "\ue000csrf\ue000"
_GRID_SLOT = "\ue000grid\ue000"


# A busy job moves many times a second (each chunk's frames and heartbeats); its page is
# re-made at most this often, whoever polls: changes within one poll interval are shown
# together, and the viewers share one computation of them.
COALESCE_SECONDS = 2.0


def coalesce(pk: int, etag: str) -> tuple[str, bool]:
    """The version the job's poll answers with: ``etag`` (the newest), or the last one
    shown while it is younger than ``COALESCE_SECONDS`` or while another process is making
    the next (then nobody waits for it). True when the caller is to make and publish it.
    """
    key = f"rh:live:{pk}"
    latest = cache.get(key)
    if isinstance(latest, tuple):
        shown, at = latest
        if shown == etag:
            return etag, False
        if time.time() - at < COALESCE_SECONDS or not cache.add(f"{key}:lock", 1, 10):
            return shown, False
    return etag, True


def publish(pk: int, etag: str) -> None:
    """``etag`` is the job's version shown from now on (``coalesce``)."""
    cache.set(f"rh:live:{pk}", (etag, time.time()), GRID_CACHE_SECONDS)
    cache.delete(f"rh:live:{pk}:lock")


def job_partial(request: HttpRequest, pk: int, etag: str) -> str:
    """The job page's live partial at version ``etag``, for a user who may see the job.

    The template is rendered once per version and page of chunks, by the first poller;
    every other viewer gets that HTML with their own CSRF token and grid delta filled in,
    so a change to a job many people watch costs one render, not one per viewer.
    """
    from .queries import get_job, job_detail

    key = f"{_grid_key(pk, etag)}:partial:{request.get_full_path()}"
    html = cache.get(key)
    job: RenderJob | None = None
    if not isinstance(html, str):
        job = get_job(request.user, pk)
        context = job_detail(job, request.GET.get("chunks"), frame_summary(job, etag))
        context |= {"etag": etag, "live_grid": _GRID_SLOT, "csrf_token": _CSRF_SLOT}
        html = render_to_string("jobs/_job_live.html", context, request=request)
        cache.set(key, html, GRID_CACHE_SECONDS)
    grid = grid_update(job or RenderJob(pk=pk), etag, client_etag(request))
    return html.replace(_GRID_SLOT, grid).replace(_CSRF_SLOT, get_token(request))
