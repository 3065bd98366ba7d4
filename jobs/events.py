"""What render nodes report, applied to the database in batches: ``apply_events``.

A node reports a chunk's life as events (``renderhub.node_events`` sends them as broker
messages; a worker of our own hands them over in-process). Each is a dict:

    {"id": "<node>:<task>:<attempt>:<seq>", "task": 12, "attempt": 2, "seq": 7,
     "token": "<the chunk attempt's token, jobs.event_tokens>",
     "kind": "frame_started" | "frame_done" | "frame_failed" | "progress" | "heartbeat"
             | "log" | "finished",
     "at": 1764680000.25,            # when the node saw it (seconds since the epoch)
     ...the kind's fields: frame, seconds, output and thumbnail (the tails of the names
        the node wrote: ``png`` for ``<scene stem>_0042.png``, jobs.frame_names), reason, cpu,
        tails {"agent_log_tail": …, "stdout_tail": …, "stderr_tail": …},
        and for "finished": status (the agent's: "success", "renderer_failed"…), exit_code}

A batch costs a bounded number of queries whatever its size: one read of the chunks it
names, one update per kind and chunk at most, one per job's counters. Events are applied
in order per chunk (by ``seq``), only for the chunk's current attempt while it runs, only
with that attempt's token (checked against the chunk as read: its attempt and the moment it
was claimed), and only to the chunk's own frames; an event whose fields are not what its
kind needs (a frame that is no integer, a time that is no finite number) is invalid.
Applying a batch twice changes nothing the second time (a broker redelivers after a crash):
every update is guarded by a state (a frame is started only from queued, done only once,
counted once) or by time (a heartbeat never moves back). Chunk starts and ends stay with
the services (``claim`` and ``task_finished``): they decide ownership and retries.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db import transaction
from django.db.models import F

from . import event_sql
from .choices import TaskState
from .event_tokens import is_genuine
from .frame_names import frame_urls
from .models import Frame, RenderJob, Task
from .services import task_finished

log = logging.getLogger(__name__)

KINDS = {"frame_started", "frame_done", "frame_failed", "progress", "heartbeat", "log", "finished"}
# The agent's outcomes another attempt may cure (the others fail the same on every node).
RETRYABLE = {"renderer_failed", "timeout", "crashed", "error"}
TAILS = ("agent_log_tail", "stdout_tail", "stderr_tail")


@dataclass
class Applied:
    events: int = 0  # applied to a running chunk's current attempt
    stale: int = 0  # for another attempt, or a chunk no longer running: ignored
    invalid: int = 0  # not an event this module reads
    forged: int = 0  # without its chunk attempt's token (jobs.event_tokens): dropped
    frames_done: int = 0  # frames newly done (a repeated report counts 0)
    latencies: list[float] = field(default_factory=list)  # seconds from "at" to applied
    transits: list[float] = field(default_factory=list)  # from "sent" (published) to applied
    # (reply queue, task, attempt) of genuine events about an attempt that no longer runs:
    # the node is told to stop it (jobs.node_requests).
    stops: set[tuple[str, int, int]] = field(default_factory=set)
    # (reply queue, task, attempt) of heartbeats of running attempts asking for new write
    # grants (node_claims.renew_grants).
    renewals: set[tuple[str, int, int]] = field(default_factory=set)

    def add(self, other: Applied) -> None:
        """Count ``other``'s batch in this one's."""
        _merge(self, other)


def _merge(into: Applied, other: Applied) -> None:
    for name in ("events", "stale", "invalid", "forged", "frames_done"):
        setattr(into, name, getattr(into, name) + getattr(other, name))
    into.latencies += other.latencies
    into.transits += other.transits
    into.stops |= other.stops
    into.renewals |= other.renewals


def _number(value: Any) -> bool:
    """A plain, finite, non-negative number below 10^11 (seconds, a timestamp, a percent)."""
    # The range first: math.isfinite overflows on a huge int, and a NaN fails it anyway.
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and 0 <= value < 1e11
        and math.isfinite(value)
    )


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _valid(event: Any) -> bool:
    """An event this module reads, its numbers numbers (a node may send anything)."""
    if not (
        isinstance(event, dict)
        and event.get("kind") in KINDS
        and all(_integer(event.get(key)) for key in ("task", "attempt", "seq"))
    ):
        return False
    if event["kind"].startswith("frame_") and not _integer(event.get("frame")):
        return False
    if event["kind"] == "progress" and "frame" in event and not _integer(event["frame"]):
        return False
    numbers = ("at", "sent", "seconds", "cpu")
    return all(_number(event[key]) for key in numbers if event.get(key) is not None)


def _time(value: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(float(value), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def apply_events(events: Iterable[dict[str, Any]]) -> Applied:
    """Apply one batch of node events; see the module docstring."""
    applied = Applied()
    by_task: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        if not _valid(event):
            applied.invalid += 1
        else:
            by_task[event["task"]].append(event)
    if not by_task:
        return applied
    with transaction.atomic():
        running = {
            row["pk"]: row
            for row in Task.objects.filter(pk__in=by_task, state=TaskState.RUNNING).values(
                "pk", "job_id", "attempts", "started_at"
            )
        }
        started: list[tuple[int, int]] = []
        done: dict[int, list[dict[str, Any]]] = defaultdict(list)
        failed: list[tuple[int, int, str]] = []
        task_updates: dict[int, dict[str, Any]] = {}
        finished: dict[int, dict[str, Any]] = {}
        for task_id, chunk_events in by_task.items():
            row = running.get(task_id)
            current = []
            for event in chunk_events:
                if row is None or event["attempt"] != row["attempts"]:
                    applied.stale += 1  # its attempt ended: the node is told to stop
                    if isinstance(event.get("reply"), str):
                        applied.stops.add((event["reply"], task_id, event["attempt"]))
                elif is_genuine(event, row["started_at"]):
                    current.append(event)
                else:
                    applied.forged += 1
            if row is None:
                continue
            values: dict[str, Any] = {}
            for event in sorted(current, key=lambda e: e["seq"]):
                applied.events += 1
                kind = event["kind"]
                if kind == "frame_started":
                    started.append((task_id, int(event["frame"])))
                    values["current_frame"] = int(event["frame"])
                elif kind == "frame_done":
                    done[task_id].append(event)
                elif kind == "frame_failed":
                    failed.append((task_id, int(event["frame"]), str(event.get("reason", ""))))
                elif kind in ("heartbeat", "progress", "log"):
                    values.update(_beat(event))
                    if event.get("renew") is True and isinstance(event.get("reply"), str):
                        applied.renewals.add((event["reply"], task_id, event["attempt"]))
                elif kind == "finished":
                    finished.setdefault(task_id, event)
                    values.update(_beat(event))  # the logs' last tails
            if values:
                task_updates[task_id] = values
        now = datetime.now(tz=UTC)
        if started:
            event_sql.start_frames(started, now)
        applied.frames_done = _finish_frames(done, running, now)
        for task_id, number, reason in failed:
            Frame.objects.filter(task_id=task_id, number=number).update(
                failure_reason=reason[:2000]
            )
        # A redelivered heartbeat never moves one back (event_sql keeps that guard).
        event_sql.update_running_tasks(task_updates)
        _finish_chunks(finished)
    if applied.forged:
        log.warning("dropped %d events without their chunk's token", applied.forged)
    committed = datetime.now(tz=UTC).timestamp()
    applied.latencies = _since("at", by_task, committed)
    applied.transits = _since("sent", by_task, committed)
    return applied


def _since(stamp: str, by_task: dict[int, list[dict[str, Any]]], now: float) -> list[float]:
    return [
        now - float(e[stamp])
        for chunk_events in by_task.values()
        for e in chunk_events
        if isinstance(e.get(stamp), int | float)
    ]


def _finish_chunks(finished: dict[int, dict[str, Any]]) -> None:
    """End each chunk as its node said (after its frames and logs of the same batch)."""
    for task in Task.objects.filter(pk__in=finished, state=TaskState.RUNNING):
        event = finished[task.pk]
        if event["attempt"] != task.attempts:
            continue
        status = str(event.get("status") or "crashed")
        ok = status == "success"
        code = event.get("exit_code")
        task_finished(
            task,
            ok=ok,
            reason="" if ok else str(event.get("reason") or f"Render {status}.")[:5000],
            exit_code=code if isinstance(code, int) else None,
            retryable=status in RETRYABLE,
        )


def _beat(event: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if event["kind"] == "heartbeat" and (at := _time(event.get("at"))) is not None:
        values["heartbeat_at"] = at
        if isinstance(event.get("cpu"), int | float):
            values["cpu_percent"] = float(event["cpu"])
    if event["kind"] == "progress" and isinstance(event.get("frame"), int):
        values["current_frame"] = event["frame"]
    tails = event.get("tails")
    if isinstance(tails, dict):
        values.update({k: str(v)[-8000:] for k, v in tails.items() if k in TAILS})
    return values


def _finish_frames(
    done: dict[int, list[dict[str, Any]]], running: dict[int, Any], now: datetime
) -> int:
    """Mark frames done once each (one bulk update) and count them on their jobs."""
    if not done:
        return 0
    jobs = {
        pk: (output_url, scene_url)
        for pk, output_url, scene_url in RenderJob.objects.filter(
            pk__in={running[task_id]["job_id"] for task_id in done}
        ).values_list("pk", "output_url", "scene_url")
    }
    rows = []
    for task_id, events in done.items():
        job_id = running[task_id]["job_id"]
        for event in events:
            number = int(event["frame"])
            # The URLs are the manager's: a node names only the tails it wrote.
            file_url, thumb_url = frame_urls(
                *jobs[job_id], number, event.get("output"), event.get("thumbnail")
            )
            seconds = float(event.get("seconds") or 0.0)
            rows.append((task_id, number, seconds, file_url[:1024], thumb_url[:1024]))
    per_job = event_sql.finish_frames(rows, now)
    for job_id, (count, seconds) in per_job.items():
        RenderJob.objects.filter(pk=job_id).update(
            frames_done=F("frames_done") + count, render_seconds=F("render_seconds") + seconds
        )
    return sum(count for count, _ in per_job.values())
