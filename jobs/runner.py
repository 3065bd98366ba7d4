"""The render worker's side of the celery backend: run one chunk on this machine.

The node agent runs in its own process group; its JSON-line events are streamed into
the database as they come (frame started, frame done with outputs, failure reasons).
Every heartbeat the worker re-reads its task row: a cancel, or a reaper that gave the
chunk to someone else, makes it kill the whole process group.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import queue
import secrets
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from renderhub import sandbox_paths, storage
from renderhub.node.agent_session import AgentSession, kept
from renderhub.node.process import CpuMeter, kill_group, read_events, read_tail, start_agent

from . import chunking, services
from .choices import ACTIVE_JOB_STATES, FrameState, TaskState
from .events import RETRYABLE
from .frame_publisher import FramePublisher, Published
from .models import RenderJob, Task, TaskAttempt
from .output_root import OutputRootRefused, chunk_output_dir
from .scene_staging import SceneFileGone
from .scene_staging import stage_scene as stage_scene  # the scene and exactly its files

log = logging.getLogger(__name__)

PASS_ON_DELAY = 3  # seconds before a chunk a blocklisted node turned down is offered again
LOG_FILES = ("agent.log", "stdout.log", "stderr.log")


def claim(task_id: int, node: str) -> tuple[Task, TaskAttempt] | None:
    """Take the chunk if it is still queued, with the attempt it starts; a duplicate or
    stale delivery gets None. A chunk of an adaptive job is sized as it is taken, from the
    job's work queue (jobs.chunking), under the job's row lock."""
    with transaction.atomic():
        job_id = Task.objects.filter(pk=task_id).values_list("job_id", flat=True).first()
        if job_id is None:
            return None  # a chunk the work queue was re-cut without (jobs.chunking)
        RenderJob.objects.select_for_update().filter(pk=job_id, chunk_seconds__isnull=False).first()
        task = _take(task_id, node)
        if task is None:
            return None
        chunking.take(task)
    return task, services.task_started(task)


def _take(task_id: int, node: str) -> Task | None:
    now = timezone.now()
    claimed = Task.objects.filter(
        pk=task_id,
        state=TaskState.QUEUED,
        job__state__in=ACTIVE_JOB_STATES,
        # Paused jobs and suspended clusters start nothing (jobs.scheduling).
        job__paused_at__isnull=True,
        job__waiting=False,
        job__cluster__suspended_at__isnull=True,
    ).update(
        state=TaskState.RUNNING,
        node=node,
        attempts=F("attempts") + 1,
        started_at=now,
        heartbeat_at=now,
        finished_at=None,
        exit_code=None,
        failure_reason="",
    )
    if not claimed:
        return None
    return Task.objects.select_related("job__project", "job__software", "job__cluster").get(
        pk=task_id
    )


def cpus_for_chunk() -> int:
    """Renderer threads per chunk: ``RENDER_THREADS``, else every core of this machine.
    While all of a node's slots render, their renderers share the cores; when one ends
    first (a job's chunks never end at quite the same time), the others take up the cores
    it left instead of leaving them idle until the job's last frame."""
    return settings.RENDER_THREADS or max(1, os.cpu_count() or 1)


def pass_on_if_blocked(task_id: int, node: str) -> str | None:
    """Keep a blocklisted node off the chunk while another online node may take it.

    When every online node of the cluster failed this job, the failure is the job's (its
    scene, its parameters), not the nodes': the node renders it again, the chunk's attempts
    bound that, and it fails with the renderer's own error rather than a blocklist note.
    """
    task = Task.objects.select_related("job__cluster").filter(pk=task_id).first()
    if task is None or task.state != TaskState.QUEUED or not services.is_blocked(task.job_id, node):
        return None
    if not services.nodes_left(task):
        log.info("every online node failed job %s: %s takes %s anyway", task.job_id, node, task)
        return None
    from .backends.celery import send_chunk

    send_chunk(task_id, task.job.cluster, countdown=PASS_ON_DELAY)
    log.info("%s is blocklisted for job %s; passed %s on", node, task.job_id, task)
    return "passed on"


def run_chunk(task_id: int, node: str) -> str:
    """Claim and render one chunk; returns the task's state afterwards ('skipped' if not ours)."""
    if (outcome := pass_on_if_blocked(task_id, node)) is not None:
        return outcome
    claimed = claim(task_id, node)
    if claimed is None:
        log.info("task %s is not queued any more; skipping this delivery", task_id)
        return "skipped"
    task, attempt = claimed
    run = ChunkRun(task, node, cpus_for_chunk(), attempt)
    try:
        return run.execute()
    finally:
        run.cleanup()
        if task.job.chunk_seconds:  # the job's speed is known better now
            try:
                chunking.recut(task.job_id)
            except Exception:  # the next claim cuts the work queue again anyway
                log.exception("could not re-cut the chunks of job %s", task.job_id)
        run.release_session()


@dataclass
class Outcome:
    status: str = "crashed"
    reason: str = ""
    exit_code: int | None = None


@dataclass
class ChunkRun:
    task: Task
    node: str
    cpus: int
    attempt: TaskAttempt | None = None
    folder: str = field(init=False)  # the attempt's: task-I-attempt-N
    work_dir: Path = field(init=False)
    output_dir: Path | None = None  # made with the spec (jobs.output_root), or the session's
    process: subprocess.Popen[bytes] | None = None
    cpu: CpuMeter = field(default_factory=CpuMeter)
    events: queue.Queue[dict[str, Any] | None] = field(default_factory=queue.Queue)
    outcome: Outcome = field(default_factory=Outcome)
    lost: str = ""  # why we stopped owning the task, if we did
    # The agent kept between this job's chunks on this worker process (RENDER_WARM_SECONDS).
    session: AgentSession | None = None
    finished: bool = False  # the agent reported this chunk's end

    def __post_init__(self) -> None:
        job = self.task.job
        # The attempt's own number names its folder: Task.attempts restarts when a job is
        # retried, and the earlier attempts' logs must not be overwritten.
        number = self.attempt.number if self.attempt else self.task.attempts
        self.folder = attempt = f"task-{self.task.index}-attempt-{number}"
        self.work_dir = settings.RENDER_WORK_DIR / f"job-{job.pk}" / attempt
        self.log_url = storage.join(job.output_url, "_logs", attempt + "/")
        # The agent moves each checked frame here, out of the renderer's reach.
        self.frames_dir = self.work_dir / "frames"
        # Uploads and thumbnails run at idle priority, off this thread (jobs.frame_publisher).
        self.publisher = FramePublisher(job.output_url, self.frames_dir, str(self.task))

    @property
    def job(self) -> RenderJob:
        return self.task.job

    def job_session(self) -> AgentSession:
        """The agent this worker process kept from the job's last chunk, else a new one.
        The key names the job's row and its creation: a session never serves another job."""
        job = self.job
        key = f"job-{job.pk}-{job.created_at.timestamp():.6f}"
        if (session := kept.take(key)) is not None:
            return session
        name = f"session-{secrets.token_hex(6)}"
        output_dir = chunk_output_dir(job.project.node_output_dir, job.pk, name)
        return AgentSession(key, settings.RENDER_WORK_DIR / f"job-{job.pk}" / name, output_dir)

    def execute(self) -> str:
        try:
            if settings.RENDER_WARM_SECONDS > 0:
                self.session = self.job_session()
                self.output_dir = self.session.output_dir
            spec = self.build_spec()
            self.start_agent(spec)
            self.pump()
        except SceneFileGone as exc:  # gone on every node alike: not retried
            self.outcome = Outcome("input_missing", str(exc))
        except OutputRootRefused as exc:  # this machine's folders, or the project's setting
            self.outcome = Outcome("error" if exc.machine else "bad_spec", str(exc))
        except Exception as exc:
            log.exception("chunk %s failed inside RenderHub", self.task)
            self.kill()
            self.outcome = Outcome("crashed", f"RenderHub error on {self.node}: {exc}")
        self.publish_logs()
        if self.lost:
            log.warning("stopped %s: %s", self.task, self.lost)
            return Task.objects.values_list("state", flat=True).get(pk=self.task.pk)
        ok = self.outcome.status == "success"
        return services.task_finished(
            self.task,
            ok=ok,
            reason="" if ok else self.outcome.reason or f"Render {self.outcome.status}.",
            exit_code=self.outcome.exit_code,
            retryable=self.outcome.status in RETRYABLE,
        )

    # --- preparing ---------------------------------------------------------------------

    def build_spec(self) -> dict[str, Any]:
        job, software = self.job, self.job.software
        frames = list(
            self.task.frame_set.exclude(state=FrameState.DONE)
            .order_by("number")
            .values_list("number", flat=True)
        )
        if self.output_dir is None:
            self.output_dir = chunk_output_dir(job.project.node_output_dir, job.pk, self.folder)
        scene, scene_root = stage_scene(job)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        stem = posixpath.splitext(scene.name)[0]
        return {
            "version": 1,
            "job": job.pk,
            "task": self.task.index,
            "command": software.command_template,
            "variables": job.parameters,
            "scene": str(scene),
            "frames": frames,
            "cpus": self.cpus,
            "work_dir": str(self.work_dir),
            "output_dir": str(self.output_dir),
            "output_name": f"{stem}_####",
            "progress_parser": software.progress_parser,
            "timeout": settings.RENDER_TIMEOUT,
            "stall_timeout": settings.RENDER_STALL_TIMEOUT,
            "publish_dir": str(self.frames_dir),
            **({"session_dir": str(self.session.directory)} if self.session else {}),
            **({"bytecode_dir": bytecode} if (bytecode := settings.RENDER_BYTECODE_DIR) else {}),
            "sandbox": {
                "kind": settings.RENDER_SANDBOX,
                "network": software.network,
                # The scene and exactly its files (jobs/scene_staging.py), nothing else.
                "read_only": [str(scene_root), *sandbox_paths.extra_read_paths()],
                "file_size": settings.RENDER_MAX_FILE_SIZE,
                "processes": settings.RENDER_MAX_PROCESSES,
                "memory": settings.RENDER_MAX_MEMORY,
            },
        }

    def start_agent(self, spec: dict[str, Any]) -> None:
        spec_path = self.work_dir / "spec.json"
        spec_path.write_text(json.dumps(spec, indent=1))
        if self.session is not None:
            if not self.session.submit(spec_path):
                raise RuntimeError("the render agent session ended before the chunk")
            self.process, self.events = self.session.process, self.session.events
            Task.objects.filter(pk=self.task.pk).update(pid=self.process.pid)
            return
        self.process = start_agent(spec_path, self.work_dir)
        Task.objects.filter(pk=self.task.pk).update(pid=self.process.pid)
        args = (self.process.stdout, self.events)
        threading.Thread(target=read_events, args=args, daemon=True).start()

    # --- running -----------------------------------------------------------------------

    def pump(self) -> None:
        assert self.process is not None
        next_beat = 0.0
        while True:
            try:
                event = self.events.get(timeout=0.5)
            except queue.Empty:
                event = {}
            if event is None:
                break
            if event:
                self.handle(event)
            self.publisher.drain(self.record_frame)
            if self.finished and self.session is not None:
                break  # the session's agent lives on, for the job's next chunk
            if time.monotonic() >= next_beat:
                next_beat = time.monotonic() + settings.RENDER_HEARTBEAT_SECONDS
                if not self.heartbeat():
                    self.kill()
        self.publisher.close(self.record_frame)
        if self.session is not None:
            if not self.finished:  # the agent ended mid-chunk
                self.session.kill()
                code = self.process.wait()
            else:
                code = self.outcome.exit_code or 0
            stderr = self.session.stderr_path
        else:
            code = self.process.wait()
            stderr = self.work_dir / "agent.stderr"
        if self.outcome.exit_code is None:
            self.outcome.exit_code = code
            if self.outcome.status == "crashed":
                detail = read_tail(stderr, 2000)
                self.outcome.reason = f"The agent exited with {code} without reporting: {detail}"

    def handle(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "frame_started":
            services.frame_started(self.task, int(event["frame"]))
        elif kind == "frame_done":
            outputs = event.get("outputs") or []
            self.publisher.put(int(event["frame"]), outputs, float(event.get("seconds") or 0.0))
        elif kind == "frame_failed":
            self.task.frame_set.filter(number=int(event["frame"])).update(
                failure_reason=str(event.get("reason", ""))[:2000]
            )
        elif kind == "finished":
            self.finished = True
            self.outcome = Outcome(
                str(event.get("status", "crashed")),
                str(event.get("reason") or ""),
                event.get("exit_code"),
            )

    def record_frame(self, frame: Published) -> None:
        services.frame_done(
            self.task,
            frame.number,
            seconds=frame.seconds,
            output_url=frame.output_url,
            thumbnail_url=frame.thumbnail_url,
        )

    def heartbeat(self) -> bool:
        """Record that we are alive; False when the task is no longer ours to run."""
        updated = Task.objects.filter(
            pk=self.task.pk, state=TaskState.RUNNING, attempts=self.task.attempts
        ).update(heartbeat_at=timezone.now(), cpu_percent=self.cpu_percent(), **self.tails())
        if updated:
            return True
        state = Task.objects.values_list("state", flat=True).get(pk=self.task.pk)
        self.lost = "cancelled" if state == TaskState.CANCELLED else f"task is {state} elsewhere"
        return False

    def cpu_percent(self) -> float | None:
        return None if self.process is None else self.cpu.percent(self.process.pid)

    def tails(self) -> dict[str, str]:
        names = {
            "agent.log": "agent_log_tail",
            "stdout.log": "stdout_tail",
            "stderr.log": "stderr_tail",
        }
        return {column: read_tail(self.work_dir / name) for name, column in names.items()}

    def kill(self) -> None:
        """Stop the agent and the renderer (SIGTERM to the group, SIGKILL after a grace)."""
        if self.session is not None:
            self.session.kill()
        else:
            kill_group(self.process)

    # --- finishing ---------------------------------------------------------------------

    def publish_logs(self) -> None:
        try:
            backend, prefix = storage.resolve(self.log_url)
            for name in LOG_FILES:
                if (path := self.work_dir / name).exists():
                    backend.upload_file(path, prefix + name)
            tails = self.tails()
            Task.objects.filter(pk=self.task.pk, attempts=self.task.attempts).update(
                log_url=self.log_url, **tails
            )
            if self.attempt is not None:  # even when cancelled: these are its logs
                TaskAttempt.objects.filter(pk=self.attempt.pk).update(log_url=self.log_url, **tails)
        except Exception:  # logs are a convenience; never fail a render over them
            log.exception("could not publish the logs of %s", self.task)

    def cleanup(self) -> None:
        if self.session is None or not self.clean:
            self.kill()  # a session's own folders go with it
        if self.session is None and self.output_dir is not None:
            shutil.rmtree(self.output_dir, ignore_errors=True)
        shutil.rmtree(self.work_dir, ignore_errors=True)

    @property
    def clean(self) -> bool:
        """The chunk ended as the agent reported, nothing taken from us: its session, and
        the renderer in it, may serve the job's next chunk."""
        return self.finished and not self.lost and self.outcome.status == "success"

    def release_session(self) -> None:
        """Keep the session for the job's next chunk on this worker process while the job
        has chunks queued (closed after RENDER_WARM_SECONDS unless one comes); else close."""
        session, self.session = self.session, None
        if session is None:
            return
        queued = Task.objects.filter(job_id=self.job.pk, state=TaskState.QUEUED).exists()
        if self.clean and queued and session.alive():
            kept.keep(session, settings.RENDER_WARM_SECONDS)
        else:
            session.close()
