"""Render nodes without keys take chunks over the broker: the manager's answers.

A node (``renderhub.node``) that got a chunk's message asks for it with a ``claim`` event
(``renderhub.node.claims``); the event drain hands each claim to :func:`answer_claim`,
which claims the chunk exactly as the manager's own worker does (``runner.claim``: queued
only, not paused, not on a suspended cluster, not for a blocklisted node while others can
take it, sized as it is taken when adaptive) and answers with what the node needs and
nothing more: the command, the frames and the sandbox; a read link per scene file, with
its place below the scene's folder; a write grant per frame, per thumbnail and for the
attempt's log folder (``renderhub.storage.grants``); the attempt's event token.

A claim must carry the ticket that came with the chunk's message (:func:`claim_ticket`),
so only a process that received the message from the cluster's queue can take a chunk.
"""

from __future__ import annotations

import hashlib
import logging
import posixpath
import time
from typing import Any

from django.conf import settings
from django.db.models import F
from django.utils.crypto import constant_time_compare

from renderhub import storage
from renderhub.storage.grants import read_link, write_grant, write_grants

from . import runner, scene_manifest, services
from .choices import FrameState, TaskState
from .event_tokens import claim_ticket, token_of
from .frame_names import frame_name, scene_stem
from .models import RenderJob, Task, TaskAttempt
from .scene_staging import SceneFileGone

log = logging.getLogger(__name__)

READ_LINK_SECONDS = 900  # staging happens as the chunk starts
# A claim whose node stops waiting within this many seconds is not taken (its chunk would
# be claimed with nobody rendering it until the reaper noticed).
CLAIM_MARGIN_SECONDS = 5


def attempt_folder(task: Task, attempt: int) -> str:
    return f"task-{task.index}-attempt-{attempt}"


def answer_claim(claim: dict[str, Any]) -> dict[str, Any]:
    """The answer to one claim (see the module docstring)."""
    task_id, node, ident = claim.get("task"), str(claim.get("node") or "")[:255], claim.get("id")

    def refused(reason: str) -> dict[str, Any]:
        return {"kind": "refused", "claim": ident, "task": task_id, "reason": reason}

    ticket = claim.get("ticket")
    if not isinstance(task_id, int) or not node or not isinstance(ticket, str):
        return refused("not a claim: it needs the chunk, the node and the chunk's ticket")
    if not constant_time_compare(ticket, claim_ticket(task_id)):
        log.warning("refused a claim of chunk %s by %s without its ticket", task_id, node)
        return refused("this chunk's ticket is not the one its message carried")
    if _given_up(claim):  # nobody listens for the answer any more
        return refused("the node stopped waiting for this answer")
    if runner.pass_on_if_blocked(task_id, node) is not None:
        return refused("passed on: this node failed the job before")
    claimed = runner.claim(task_id, node)
    if claimed is None:
        return refused("not queued any more")
    task, attempt = claimed
    try:
        answer = {"claim": ident, **chunk_for_node(task, attempt)}
    except (SceneFileGone, storage.StorageError) as exc:
        gone = isinstance(exc, SceneFileGone | storage.NotFound)
        services.task_finished(task, ok=False, reason=str(exc), exit_code=None, retryable=not gone)
        return refused(str(exc))
    if _given_up(claim):  # made too late: nobody would render it; not counted against it
        Task.objects.filter(pk=task.pk).update(max_attempts=F("max_attempts") + 1)
        services.requeue_task(task, "its node stopped waiting for the claim's answer")
        return refused("the node stopped waiting for this answer")
    return answer


def _given_up(claim: dict[str, Any]) -> bool:
    """Whether the claiming slot has (nearly) stopped listening: measured on the manager's
    clock from when the drain took the claim (``taken_at``), never against the node's."""
    taken, wait = claim.get("taken_at"), claim.get("wait")
    if not (isinstance(taken, int | float) and isinstance(wait, int | float)):
        return False
    return time.time() > taken + wait - CLAIM_MARGIN_SECONDS


def chunk_for_node(task: Task, attempt: TaskAttempt) -> dict[str, Any]:
    """The claimed chunk as a node without keys runs it."""
    job, software = task.job, task.job.software
    frames = list(
        task.frame_set.exclude(state=FrameState.DONE)
        .order_by("number")
        .values_list("number", flat=True)
    )
    scene, scene_files = _scene_files(job)
    logs = storage.join(job.output_url, "_logs", attempt_folder(task, attempt.number) + "/")
    Task.objects.filter(pk=task.pk).update(log_url=logs)
    return {
        "kind": "chunk",
        "task": task.pk,
        "attempt": task.attempts,
        "token": token_of(task),
        "job": job.pk,
        "index": task.index,
        "command": software.command_template,
        "variables": job.parameters,
        "frames": frames,
        "scene": scene,
        "files": scene_files,
        "output_name": scene_stem(job.scene_url) + "_####",
        "progress_parser": software.progress_parser,
        # Whether to keep this slot's renderer for the job's next chunk once this one ends.
        "more_queued": Task.objects.filter(job_id=job.pk, state=TaskState.QUEUED).exists(),
        "timeout": settings.RENDER_TIMEOUT,
        "stall_timeout": settings.RENDER_STALL_TIMEOUT,
        "heartbeat": settings.RENDER_HEARTBEAT_SECONDS,
        "sandbox": {
            "kind": settings.RENDER_SANDBOX,
            "network": software.network,
            "file_size": settings.RENDER_MAX_FILE_SIZE,
            "processes": settings.RENDER_MAX_PROCESSES,
            "memory": settings.RENDER_MAX_MEMORY,
        },
        **grants_for(job, logs, frames, grant_owner(task)),
    }


def grant_owner(task: Task) -> str:
    """Whose a local write grant is: this claim of the chunk (``owner_alive`` ends it)."""
    started = task.started_at.isoformat() if task.started_at else ""
    return f"{task.pk}:{task.attempts}:{started}"


def owner_alive(owner: str) -> bool:
    """Whether the chunk claim a grant was made for still runs (the storage upload endpoint
    asks, through ``renderhub.storage.grants.register_owner_check``)."""
    task_id = owner.partition(":")[0]
    if not task_id.isdigit():
        return False
    task = Task.objects.filter(pk=int(task_id), state=TaskState.RUNNING).first()
    return task is not None and grant_owner(task) == owner


def grants_for(job: RenderJob, logs: str, frames: list[int], owner: str) -> dict[str, Any]:
    """The write grants of one attempt: a frame's file and thumbnail for each of
    ``frames``, the attempt's log folder ``logs``; good for RENDER_GRANT_SECONDS
    (``grant_seconds`` tells the node, which asks for new ones before: ``renew_grants``)."""
    lifetime = int(settings.RENDER_GRANT_SECONDS)
    names = {number: frame_name(job.scene_url, number) for number in frames}
    size = int(settings.RENDER_MAX_FILE_SIZE)
    files = write_grants(job.output_url, list(names.values()), lifetime, size, owner)
    thumbs = write_grants(
        storage.join(job.output_url, "_thumbs/"), list(names.values()), lifetime, 16 << 20, owner
    )
    return {
        "grant_seconds": lifetime,
        "outputs": {
            str(number): {"name": name, "file": files[name], "thumbnail": thumbs[name]}
            for number, name in names.items()
        },
        "logs": write_grant(logs, lifetime, 64 << 20, owner),
    }


def renew_grants(task_id: int, attempt: int) -> dict[str, Any] | None:
    """New write grants for a running attempt's frames not done yet (a heartbeat asked,
    with the attempt's token: ``events.apply_events`` checked it); None once the attempt
    no longer runs."""
    task = (
        Task.objects.select_related("job")
        .filter(pk=task_id, state=TaskState.RUNNING, attempts=attempt)
        .first()
    )
    if task is None or not task.log_url:
        return None
    frames = list(
        task.frame_set.exclude(state=FrameState.DONE)
        .order_by("number")
        .values_list("number", flat=True)
    )
    return {"kind": "grants", "task": task_id, "attempt": attempt,
            **grants_for(task.job, task.log_url, frames, grant_owner(task))}  # fmt: skip


def _scene_files(job: RenderJob) -> tuple[str, list[dict[str, Any]]]:
    """The scene's place and, for each file it needs, a read link, its place and its
    version (a node keeps one copy per version)."""
    manifest = scene_manifest.for_job(job)
    if manifest.get("folder"):
        entries, scene = _folder_entries(job)
    else:
        entries, scene = manifest["files"], manifest["scene"]
    folders = scene_manifest.allowed_folders(job)
    files = []
    for entry in entries:
        name = entry.get("source") or entry["url"]
        if scene_manifest.strays([entry["url"]], folders):
            raise SceneFileGone(
                f"{name}, which the scene needs, is now a symbolic link out of the project's "
                "storage mappings; put the file itself back and retry the job"
            )
        backend, key = storage.resolve(entry["url"])
        try:
            stat = backend.stat(key)
        except storage.NotFound:
            raise SceneFileGone(
                f"{name}, which the scene needs, is no longer in storage (it was there when "
                "the job was submitted); put it back and retry the job"
            ) from None
        version = f"{entry['url']}\0{stat.size}\0{stat.etag}\0{stat.modified}"
        files.append(
            {
                "url": read_link(entry["url"], READ_LINK_SECONDS),
                "place": entry["place"],
                "version": hashlib.sha256(version.encode()).hexdigest(),
            }
        )
    return str(scene), files


def _folder_entries(job: RenderJob) -> tuple[list[dict[str, str]], str]:
    """A scene whose references could not be read: every file of its folder, keeping
    paths relative to its mapping (as ``scene_staging`` stages it for its own worker)."""
    backend, key = storage.resolve(job.scene_url)
    mapping = job.project.mapping_for(job.scene_url)
    _, root_key = storage.resolve(mapping.source) if mapping else (None, "")
    entries = []
    for found in backend.walk(posixpath.dirname(key) + "/"):
        place = found.key.removeprefix(root_key)
        try:
            storage.normalize_key(place)
        except storage.InvalidKey:
            continue
        entries.append({"url": backend.url_for(found.key), "place": place})
    return entries, key.removeprefix(root_key)
