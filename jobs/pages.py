"""What the staff pages read from storage: log tails, images, whole files and zips.

Views check permissions first (``jobs.queries.get_job`` and friends) and only then call
these; nothing here takes a URL from a request, only URLs stored on our own rows.
"""

from __future__ import annotations

import io
import logging
import posixpath
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass

from django.http import FileResponse, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.utils import timezone

from renderhub import storage

from .choices import TaskState
from .models import AttemptState, Frame, RenderJob, Task, TaskAttempt
from .outputs import list_outputs

log = logging.getLogger(__name__)

LOGS = {"agent": "agent.log", "stdout": "stdout.log", "stderr": "stderr.log"}
LOG_TAIL_COLUMNS = {"agent": "agent_log_tail", "stdout": "stdout_tail", "stderr": "stderr_tail"}
LOG_VIEW_BYTES = 64 * 1024
CHUNK_BYTES = 1024 * 1024
# Outputs a browser can show as they are; anything else (EXR, TIFF) previews as its thumbnail.
BROWSER_IMAGES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
MAX_PREVIEW_BYTES = 20 * 1024 * 1024


# Where a log is read from: the task row (live tails, or a chunk from before attempts were
# recorded) or one attempt's row; both carry log_url and the three tails.
LogSource = Task | TaskAttempt


@dataclass(frozen=True)
class LogChoice:
    """The attempt a logs page shows, the attempts to pick from, and whether it is live."""

    source: LogSource
    attempt: TaskAttempt | None
    attempts: list[TaskAttempt]
    live: bool


def choose_log(task: Task, number: int | None) -> LogChoice | None:
    """Attempt ``number`` of the chunk (default: the latest); None if it has no such attempt.

    The running attempt reads the task row, which its worker refreshes every heartbeat.
    """
    attempts = list(task.history.order_by("number"))
    if not attempts:  # a chunk from before attempts were recorded, or not started yet
        return (
            None
            if number not in (None, task.attempts)
            else LogChoice(task, None, [], log_is_live(task))
        )
    chosen = (
        attempts[-1] if number is None else next((a for a in attempts if a.number == number), None)
    )
    if chosen is None:
        return None
    if chosen is attempts[-1] and chosen.state == AttemptState.RUNNING:
        # Still open: the task row has its latest tails (and, once ended, its logs' folder).
        return LogChoice(task, chosen, attempts, log_is_live(task))
    return LogChoice(chosen, chosen, attempts, False)


@dataclass(frozen=True)
class LogText:
    text: str
    source: str  # "database" (live tail) or "storage" (the published file)
    truncated: bool  # only the end of a longer file is shown


def log_is_live(task: Task) -> bool:
    """Running (or not yet published) chunks show the tails the worker writes to the DB."""
    return task.state in (TaskState.QUEUED, TaskState.RUNNING, TaskState.HELD) or not task.log_url


def read_log(task: LogSource, which: str, live: bool | None = None) -> LogText:
    """The end of one of a chunk's (or an attempt's) logs: the DB tail while live, the stored
    file afterwards."""
    tail = getattr(task, LOG_TAIL_COLUMNS[which])
    if live is None:
        live = isinstance(task, Task) and log_is_live(task)
    if live or not task.log_url:
        return LogText(tail, "database", False)
    try:
        backend, prefix = storage.resolve(task.log_url)
        key = prefix + LOGS[which]
        size = backend.stat(key).size or 0
        start = max(0, size - LOG_VIEW_BYTES)
        data = backend.read(key, start=start) if size else b""
    except storage.NotFound:
        return LogText(tail, "database", False)
    except storage.StorageError as exc:
        log.warning("could not read %s of %s: %s", which, task, exc)
        return LogText(tail, "database", False)
    return LogText(data.decode(errors="replace"), "storage", start > 0)


def _chunks(backend: storage.Storage, key: str, size: int | None) -> Iterator[bytes]:
    if size is None:
        yield backend.read(key)
        return
    for start in range(0, size, CHUNK_BYTES):
        yield backend.read(key, start=start, end=min(size, start + CHUNK_BYTES) - 1)


def log_download(task: Task, which: str, choice: LogChoice | None = None) -> HttpResponseBase:
    """The whole log file from storage, or the DB tail when it was never published."""
    filename = f"job{task.job_id}-chunk{task.index}-{LOGS[which]}"
    source: LogSource = task
    live = log_is_live(task)
    if choice is not None:
        source, live = choice.source, choice.live
        if choice.attempt is not None:
            number = choice.attempt.number
            filename = f"job{task.job_id}-chunk{task.index}-attempt{number}-{LOGS[which]}"
    if not live and source.log_url:
        try:
            backend, prefix = storage.resolve(source.log_url)
            key = prefix + LOGS[which]
            entry = backend.stat(key)
            if (path := backend.local_path(key)) is not None:
                return FileResponse(open(path, "rb"), as_attachment=True, filename=filename)
            stream = StreamingHttpResponse(
                _chunks(backend, key, entry.size), content_type="text/plain; charset=utf-8"
            )
            stream["Content-Disposition"] = f'attachment; filename="{filename}"'
            return stream
        except storage.StorageError as exc:
            log.info("log %s of %s not in storage (%s); sending the tail", which, task, exc)
    response = HttpResponse(
        getattr(source, LOG_TAIL_COLUMNS[which]), content_type="text/plain; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def image_response(url: str, content_type: str) -> HttpResponse:
    """An image from storage; private caching, since a frame's image does not change."""
    backend, key = storage.resolve(url)
    response = HttpResponse(backend.read(key), content_type=content_type)
    response["Cache-Control"] = "private, max-age=3600"
    return response


def thumbnail(frame: Frame) -> HttpResponse:
    return image_response(frame.thumbnail_url, "image/jpeg")


def preview(frame: Frame) -> HttpResponse:
    """The frame's output when a browser can show it (and it is not huge), else its thumbnail."""
    suffix = posixpath.splitext(frame.output_url)[1].lower()
    if frame.output_url and suffix in BROWSER_IMAGES:
        backend, key = storage.resolve(frame.output_url)
        if (backend.stat(key).size or 0) <= MAX_PREVIEW_BYTES:
            return image_response(frame.output_url, BROWSER_IMAGES[suffix])
    return thumbnail(frame)


class _Sink(io.RawIOBase):
    """An unseekable file that hands what zipfile wrote to the response (data descriptors)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data = b"".join(self.parts)
        self.parts.clear()
        return data


def zip_outputs(job: RenderJob) -> Iterator[bytes]:
    """Every output file of the job as one zip, streamed a megabyte at a time.

    Stored, not deflated: rendered images are compressed already, and the zip starts
    flowing at once instead of after a compression pass over gigabytes.
    """
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for output in list_outputs(job):
            backend, key = storage.resolve(output.url)
            info = zipfile.ZipInfo(output.name, timezone.now().timetuple()[:6])
            with archive.open(info, "w", force_zip64=True) as member:
                for chunk in _chunks(backend, key, output.size):
                    member.write(chunk)
                    yield sink.take()
    yield sink.take()


def zip_response(job: RenderJob) -> StreamingHttpResponse:
    response = StreamingHttpResponse(zip_outputs(job), content_type="application/zip")
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", posixpath.basename(job.output_url.rstrip("/")))
    slug = slug.strip("-.") or f"job-{job.pk}"
    response["Content-Disposition"] = f'attachment; filename="{slug}.zip"'
    return response
