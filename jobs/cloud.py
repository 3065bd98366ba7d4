"""Render jobs on Alibaba Cloud BatchCompute: submit, poll, cancel, finish and release.

A dispatch becomes one BatchCompute DAG job (a :class:`CloudJob` row) with one task,
``render``, whose InstanceCount is the number of chunks: instance *i* renders the Task row
whose ``cloud_instance`` is *i*, and BatchCompute spreads the instances over the cluster's
VMs (or over VMs it creates for the job, AutoCluster). The node runs the agent package
(``renderhub.compute.batchcompute.node_package``) with these node paths:

    /renderhub/control/   the job's ``_logs/`` folder in OSS, mounted writable:
        cloud-<n>/spec.json              every chunk's spec (RENDERHUB_SPECS)
        cloud-<n>/events/<i>.<ns>.jsonl  the agent's JSON events, one file per attempt
        cloud-<n>/stdout.<jobId>.render.<i>, stderr.…, agent.log.…   BatchCompute's logs
        task-<index>/agent.log, stdout.log, stderr.log   (Task.log_url, as on own machines)
    /renderhub/publish/   finished frames, uploaded to the job's output folder (OutputMapping)
    project mappings      mounted at their destinations (read-only unless writable)

Polling costs, per active job and cycle, one ``get_job``; a page of ``list_instances`` only
when the job's instance counts changed (at most BATCHCOMPUTE_POLL_PAGES pages, a longer
listing continues next cycle); and, while instances run, one OSS listing of the events
folder plus a ranged read of each file that grew. Everything the poller knows is in the
database, so a restarted manager carries on where it stopped.
"""

from __future__ import annotations

import json
import logging
import posixpath
import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path, PurePosixPath
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from images.choices import Platform
from renderhub import storage
from renderhub.agent.progress import output_regex
from renderhub.compute import ComputeError
from renderhub.compute import batchcompute as bc

from . import outputs, services, thumbnails
from .choices import FrameState, TaskState
from .models import CloudJob, CloudJobState, Frame, RenderJob, Task

log = logging.getLogger(__name__)

TASK = "render"
CONTROL_DIR = "/renderhub/control/"
WORK_DIR = "/renderhub/work"
OUTPUT_DIR = "/renderhub/output"
PUBLISH_DIR = "/renderhub/publish/"
LEASE = timedelta(seconds=120)  # one poller (or submitter) per cloud job at a time
RETRY_SUBMIT_AFTER = timedelta(seconds=30)
FIND_WINDOW = timedelta(hours=6)  # how far back a resumed submission looks for its job
TAIL_BYTES = 4000
EVENT_READS_PER_JOB = 50  # events files read per job and cycle, besides those of ended instances
OPEN = (TaskState.QUEUED, TaskState.RUNNING)
ACTIVE = (CloudJobState.SUBMITTING, CloudJobState.ACTIVE)
TASK_FIELDS = ("job_id", "index", "state", "attempts", "node", "cloud_job_id", "cloud_instance")


# --- submitting ------------------------------------------------------------------------


def submit(job: RenderJob, tasks: list[Task]) -> CloudJob | None:
    """Run ``tasks`` (queued, not yet dispatched) as one BatchCompute job.

    Chunks beyond the room left (BATCHCOMPUTE_MAX_INSTANCES per job; for AutoCluster, the
    cluster's max_nodes VMs at a time) stay undispatched: dispatch_pending offers them again.
    """
    if problem := _unusable(job):
        log.warning("job %s cannot run on BatchCompute: %s", job.pk, problem)
        for task in tasks:
            services.fail_unclaimed(task, problem)
        return None
    room = _room(job)
    cloud_job = _claim(job, tasks[:room]) if room > 0 else None
    if cloud_job is not None:
        launch(cloud_job)
    return cloud_job


def _unusable(job: RenderJob) -> str:
    """Why the job cannot run on BatchCompute at all ("" when it can)."""
    project, cluster = job.project, job.cluster
    if not settings.BATCHCOMPUTE_REGION:
        return "BatchCompute is not configured (BATCHCOMPUTE_REGION is empty)."
    if not job.output_url.startswith("oss://"):
        return f"BatchCompute nodes write to OSS; the output folder {job.output_url} is not oss://."
    if bad := [m.source for m in project.mappings.all() if not m.source.startswith("oss://")]:
        return f"BatchCompute nodes mount OSS only; these mappings are not: {', '.join(bad)}."
    if project.image.platform != Platform.LINUX:
        return "The node agent runs on Linux BatchCompute images only."
    if cluster.auto_cluster:
        if not cluster.instance_type:
            return f"Cluster {cluster} has no instance type for its VMs."
    elif not cluster.cloud_cluster_id:
        return f"Cluster {cluster} has no BatchCompute cluster (it is {cluster.state})."
    return ""


def _room(job: RenderJob) -> int:
    room = settings.BATCHCOMPUTE_MAX_INSTANCES
    if job.cluster.auto_cluster:  # every instance is a VM of its own
        busy = Task.objects.filter(
            job__cluster=job.cluster, cloud_job__state__in=ACTIVE, state__in=OPEN
        ).count()
        room = min(room, job.cluster.max_nodes - busy)
    return room


def _claim(job: RenderJob, tasks: list[Task]) -> CloudJob | None:
    """The row first, under its tagged name; a chunk another dispatch took is left out."""
    with transaction.atomic():
        cloud_job = CloudJob.objects.create(job=job, name=f"claiming-{uuid.uuid4().hex}")
        now, claimed = timezone.now(), 0
        for task in tasks:
            claimed += Task.objects.filter(
                pk=task.pk, state=TaskState.QUEUED, queued_at__isnull=True
            ).update(queued_at=now, cloud_job=cloud_job, cloud_instance=claimed)
        if not claimed:
            cloud_job.delete()
            return None
        cloud_job.name = bc.tagged(f"r{job.pk}-c{cloud_job.pk}")
        cloud_job.instance_count = claimed
        cloud_job.log_url = storage.join(job.output_url, "_logs", f"cloud-{cloud_job.pk}/")
        cloud_job.save(update_fields=["name", "instance_count", "log_url"])
    return cloud_job


def launch(cloud_job: CloudJob) -> str:
    """Create the BatchCompute job of a claimed row; again after an interruption.

    A later attempt first looks for a job already carrying the row's name (the process may
    have died between creating it and saving its id), so no job is ever created twice.
    Returns the row's state: still SUBMITTING after a transient failure (retried later).
    """
    now = timezone.now()
    if not _take_lease(cloud_job.pk, CloudJobState.SUBMITTING, submit_attempts=True):
        return cloud_job.state
    cloud_job.refresh_from_db()
    try:
        client = bc.get_client()
        cloud_id = None
        if cloud_job.submit_attempts > 1:
            cloud_id = client.find_job(cloud_job.name, since=cloud_job.created_at - FIND_WINDOW)
        if cloud_id is None and cloud_job.stop_requested:
            _close(cloud_job, "Stopped", "cancelled before it was submitted", finished=True)
            return CloudJobState.ENDED
        if cloud_id is None:
            cloud_id = client.create_job(_plan(cloud_job))
        _record_submitted(cloud_job, cloud_id)
        if cloud_job.stop_requested:
            client.stop_job(cloud_id)
    except (bc.BatchComputeError, storage.StorageError) as exc:
        if isinstance(exc, bc.BatchComputeError) and not exc.transient:
            _give_up(cloud_job, f"BatchCompute refused the job: {exc}")
            return CloudJobState.ENDED
        if isinstance(exc, storage.InvalidKey):
            _give_up(cloud_job, str(exc))
            return CloudJobState.ENDED
        log.warning("submitting %s failed, will retry: %s", cloud_job.name, exc)
        CloudJob.objects.filter(pk=cloud_job.pk).update(
            error=str(exc)[:2000], lease_until=now + RETRY_SUBMIT_AFTER
        )
        return CloudJobState.SUBMITTING
    except ComputeError as exc:  # not configured, or a plan we cannot build
        _give_up(cloud_job, str(exc))
        return CloudJobState.ENDED
    return CloudJobState.ACTIVE


def _record_submitted(cloud_job: CloudJob, cloud_id: str) -> None:
    CloudJob.objects.filter(pk=cloud_job.pk).update(
        cloud_id=cloud_id,
        state=CloudJobState.ACTIVE,
        cloud_state="Waiting",
        submitted_at=timezone.now(),
        lease_until=None,
        error="",
    )
    log.info("submitted %s as BatchCompute job %s", cloud_job.name, cloud_id)


def _give_up(cloud_job: CloudJob, reason: str) -> None:
    log.warning("giving up on %s: %s", cloud_job.name, reason)
    _close(cloud_job, "", reason, finished=True)
    for task in Task.objects.filter(cloud_job=cloud_job, state=TaskState.QUEUED):
        services.fail_unclaimed(task, reason)


def _take_lease(pk: int, state: str, submit_attempts: bool = False) -> bool:
    now = timezone.now()
    extra: dict[str, Any] = {"submit_attempts": F("submit_attempts") + 1} if submit_attempts else {}
    return bool(
        CloudJob.objects.filter(pk=pk, state=state)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .update(lease_until=now + LEASE, **extra)
    )


# --- what the node gets ------------------------------------------------------------------


def _plan(cloud_job: CloudJob) -> bc.JobPlan:
    job = RenderJob.objects.select_related("project__image", "software", "cluster__image").get(
        pk=cloud_job.job_id
    )
    tasks = list(cloud_job.tasks.order_by("cloud_instance"))
    mappings = list(job.project.mappings.all())
    control = f"{CONTROL_DIR}cloud-{cloud_job.pk}/"
    specs = {
        "common": _common_spec(job),
        "instances": [{"task": t.index, "frames": f} for t, f in _frames(tasks)],
        "events_dir": control + "events/",
        "logs_dir": CONTROL_DIR,
    }
    backend, key = storage.resolve(cloud_job.log_url + "spec.json")
    backend.write(key, json.dumps(specs).encode(), content_type="application/json")
    cluster = job.cluster
    machines = bc.Machines(
        image_id=cluster.image.image_id,
        instance_type=cluster.instance_type,
        spot=cluster.spot,
        spot_price_limit=float(cluster.spot_price_limit) if cluster.spot_price_limit else None,
        disk_type=cluster.disk_type,
        disk_size_gb=cluster.disk_size_gb,
    )
    mounts = [bc.Mount(m.source, _folder(m.destination), m.writable) for m in mappings]
    mounts.append(bc.Mount(storage.join(job.output_url, "_logs/"), CONTROL_DIR, writable=True))
    task = bc.TaskPlan(
        instance_count=len(tasks),
        command_line=bc.node_command(),
        package_url=_ensure_package(job),
        log_url=cloud_job.log_url,
        timeout=settings.RENDER_TIMEOUT + 3600,  # the agent enforces RENDER_TIMEOUT itself
        max_retries=max(0, settings.RENDER_TASK_MAX_ATTEMPTS - 1),
        cluster_id="" if cluster.auto_cluster else cluster.cloud_cluster_id,
        auto=machines if cluster.auto_cluster else None,
        env={"RENDERHUB_SPECS": control + "spec.json", "PYTHONUNBUFFERED": "1"},
        mounts=mounts,
        output_mapping={PUBLISH_DIR: job.output_url},
        log_mapping={f"{WORK_DIR}/agent.log": cloud_job.log_url},
    )
    return bc.JobPlan(
        name=cloud_job.name,
        description=f"RenderHub job #{job.pk} {job.name}"[:200],
        priority=max(0, min(1000, 500 + 5 * job.priority)),
        tasks={TASK: task},
    )


def _common_spec(job: RenderJob) -> dict[str, Any]:
    mapping = job.project.mapping_for(job.scene_url)
    if mapping is None:
        raise ComputeError(f"{job.scene_url} is outside the project's storage mappings")
    source = mapping.source if mapping.source.endswith("/") else mapping.source + "/"
    scene = _folder(mapping.destination) + job.scene_url.removeprefix(source)
    stem = posixpath.splitext(posixpath.basename(scene))[0]
    return {
        "version": 1,
        "job": job.pk,
        "command": job.software.command_template,
        "variables": job.parameters,
        "scene": scene,
        "cpus": settings.RENDER_THREADS,  # 0: the node uses all its cores
        "work_dir": WORK_DIR,
        "output_dir": OUTPUT_DIR,
        "publish_dir": PUBLISH_DIR.rstrip("/"),
        "output_name": f"{stem}_####",
        "progress_parser": job.software.progress_parser,
        "timeout": settings.RENDER_TIMEOUT,
        "stall_timeout": settings.RENDER_STALL_TIMEOUT,
    }


def _seconds(value: object) -> float:
    """A frame's render time from a node event: a number between 0 and the chunk timeout."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    seconds = float(value)
    return seconds if 0.0 <= seconds <= settings.RENDER_TIMEOUT else 0.0


def _frame_pattern(job: RenderJob) -> Any:
    stem = posixpath.splitext(posixpath.basename(job.scene_url))[0]
    return output_regex(f"{stem}_####")


def _frames(tasks: list[Task]) -> list[tuple[Task, list[int]]]:
    """Each chunk's frames still to render (a retried chunk skips the ones done)."""
    todo: dict[int, list[int]] = {t.pk: [] for t in tasks}
    rows = (
        Frame.objects.filter(task__in=tasks)
        .exclude(state=FrameState.DONE)
        .order_by("number")
        .values_list("task_id", "number")
    )
    for task_id, number in rows:
        todo[task_id].append(number)
    return [(t, todo[t.pk]) for t in tasks]


def _folder(path: str) -> str:
    return path if path.endswith("/") else path + "/"


_uploaded: set[str] = set()


def _ensure_package(job: RenderJob) -> str:
    """The agent package's OSS URL; uploaded once per content (its name is its hash)."""
    data, name = bc.node_package()
    bucket = job.output_url.split("/")[2]
    folder = settings.BATCHCOMPUTE_PACKAGE_URL or (
        f"oss://{bucket}/renderhub-{settings.RENDERHUB_DEPLOYMENT_TAG}/packages/"
    )
    url = storage.join(folder, name)
    if url not in _uploaded:
        backend, key = storage.resolve(url)
        if not backend.exists(key):
            backend.write(key, data, content_type="application/gzip")
        _uploaded.add(url)
    return url


# --- polling -----------------------------------------------------------------------------


@dataclass
class PollReport:
    polled: int = 0
    submitted: int = 0
    failed: int = 0
    released: int = 0
    to_finish: list[int] = field(default_factory=list)


def poll_all() -> PollReport:
    """One cycle: resume interrupted submissions, poll every active cloud job, release."""
    report = PollReport()
    now = timezone.now()
    resumable = CloudJob.objects.filter(state=CloudJobState.SUBMITTING).filter(
        Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    )
    for cloud_job in resumable:
        report.submitted += launch(cloud_job) == CloudJobState.ACTIVE
    for pk in CloudJob.objects.filter(state=CloudJobState.ACTIVE).values_list("pk", flat=True):
        try:
            report.polled += poll(pk)
        except (ComputeError, storage.StorageError) as exc:
            report.failed += 1
            log.warning("polling cloud job %s failed: %s", pk, exc)
        except Exception:  # one broken job must not stop the others' polling and release
            report.failed += 1
            log.exception("polling cloud job %s failed", pk)
    report.to_finish = list(
        CloudJob.objects.filter(state=CloudJobState.ENDED, finished_at__isnull=True).values_list(
            "pk", flat=True
        )
    )
    report.released = release_due()
    return report


def poll_job(job: RenderJob) -> None:
    for pk in job.cloud_jobs.filter(state=CloudJobState.ACTIVE).values_list("pk", flat=True):
        poll(pk)


def poll(cloud_job_id: int) -> bool:
    """Bring one cloud job's chunks and frames up to date; False if another poller has it."""
    if not _take_lease(cloud_job_id, CloudJobState.ACTIVE):
        return False
    cloud_job = CloudJob.objects.select_related("job").get(pk=cloud_job_id)
    try:
        _Poll(cloud_job).run()
    except Exception as exc:
        CloudJob.objects.filter(pk=cloud_job_id).update(error=str(exc)[:2000])
        raise
    finally:
        CloudJob.objects.filter(pk=cloud_job_id).update(lease_until=None)
    return True


class _Poll:
    def __init__(self, cloud_job: CloudJob) -> None:
        self.cj = cloud_job
        self.job = cloud_job.job
        self.client = bc.get_client()
        rows = Task.objects.filter(cloud_job=cloud_job).only(*TASK_FIELDS)  # not frames, tails
        self.tasks = {t.cloud_instance: t for t in rows}
        self.results: dict[str, Any] = dict(cloud_job.agent_results)
        self.events_after: str | None = None  # where the next cycle's event reads resume
        self._frames: dict[int, set[int]] = {}  # task pk -> its frame numbers

    def run(self) -> None:
        cj, now = self.cj, timezone.now()
        # The reaper requeues RUNNING chunks without heartbeats; ours beat while we watch.
        Task.objects.filter(cloud_job=cj, state=TaskState.RUNNING).update(heartbeat_at=now)
        try:
            status = self.client.get_job(cj.cloud_id)
        except bc.NotFound:
            self.end("Deleted", "the BatchCompute job was deleted outside RenderHub")
            return
        if cj.stop_requested and status.state in ("Waiting", "Running"):
            self.client.stop_job(cj.cloud_id)  # a stop that failed during cancel
        seen = {"state": status.state, "metrics": status.instance_metrics}
        snapshot = dict(cj.snapshot)
        ended: list[tuple[Task, bc.InstanceStatus]] = []
        complete = True
        terminal = status.state in bc.TERMINAL_STATES
        if cj.scan_marker is not None or snapshot.get("seen") != seen or terminal:
            if cj.scan_marker is None:
                snapshot["pass"] = seen  # the counts this listing pass starts from
            instances, complete = self.scan()
            for inst in instances:
                task = self.tasks.get(inst.index)
                if task is None or task.state not in OPEN or inst.state == "Waiting":
                    continue
                task = self.start(task, inst)
                if inst.state in bc.TERMINAL_STATES and task.state == TaskState.RUNNING:
                    ended.append((task, inst))
            if complete:  # unchanged for the whole pass: nothing to list until they change
                snapshot["seen"] = seen if snapshot.pop("pass", None) == seen else {}
        if ended or any(t.state == TaskState.RUNNING for t in self.tasks.values()):
            self.read_events({inst.index for _task, inst in ended})
        if self.events_after is not None:
            snapshot["events_after"] = self.events_after
        for task, inst in ended:
            self.finish_instance(task, inst, status)
        CloudJob.objects.filter(pk=cj.pk).update(
            cloud_state=status.state,
            message=status.message,
            polled_at=now,
            snapshot=snapshot,
            scan_marker=cj.scan_marker,
            agent_results=self.results,
            event_offsets=cj.event_offsets,
            error="",
        )
        if terminal and complete:
            self.end(status.state, status.message)

    def scan(self) -> tuple[list[bc.InstanceStatus], bool]:
        """Instances from the lowest open one, at most BATCHCOMPUTE_POLL_PAGES pages."""
        open_indices = [i for i, t in self.tasks.items() if t.state in OPEN and i is not None]
        if not open_indices:
            self.cj.scan_marker = None
            return [], True
        low = min(open_indices)
        marker = self.cj.scan_marker if (self.cj.scan_marker or 0) > low else low
        found: list[bc.InstanceStatus] = []
        for _ in range(max(1, settings.BATCHCOMPUTE_POLL_PAGES)):
            page, next_marker = self.client.list_instances(self.cj.cloud_id, TASK, marker)
            found += page
            if next_marker is None:
                self.cj.scan_marker = None
                return found, True
            marker = next_marker
        self.cj.scan_marker = marker  # continue here next cycle
        return found, False

    def start(self, task: Task, inst: bc.InstanceStatus | None) -> Task:
        """The chunk runs (claimed from QUEUED like a worker would), on this attempt."""
        now = timezone.now()
        attempts = inst.retry_count + 1 if inst else max(task.attempts, 1)
        node = (inst.node_ip if inst else "") or task.node or "BatchCompute"
        if task.state == TaskState.QUEUED:
            if Task.objects.filter(pk=task.pk, state=TaskState.QUEUED, cloud_job=self.cj).update(
                state=TaskState.RUNNING,
                attempts=attempts,
                node=node,
                started_at=(inst.started if inst else None) or now,
                heartbeat_at=now,
                finished_at=None,
                exit_code=None,
                failure_reason="",
                log_url=storage.join(self.job.output_url, "_logs", f"task-{task.index}/"),
            ):
                services.task_started(task)
        elif task.attempts != attempts or task.node != node:  # a retry, maybe elsewhere
            if Task.objects.filter(pk=task.pk, state=TaskState.RUNNING).update(
                attempts=attempts, node=node
            ):
                task.attempts, task.node = attempts, node
            return task
        else:
            return task  # running as we knew it
        task = self.tasks[task.cloud_instance] = Task.objects.only(*TASK_FIELDS).get(pk=task.pk)
        return task

    def read_events(self, ended: set[int]) -> None:
        """The agents' JSON events that reached OSS since the last cycle.

        One listing shows which files grew; each is read from where the last read stopped.
        Files of instances that just ended are always read (their chunk is finished from
        them); of the others at most EVENT_READS_PER_JOB, taking turns across cycles.
        """
        backend, prefix = storage.resolve(self.cj.log_url + "events/")
        offsets = dict(self.cj.event_offsets)
        grown = []
        for entry in backend.walk(prefix):
            name = entry.key.removeprefix(prefix)
            if entry.size and entry.size > offsets.get(name, 0) and name.split(".")[0].isdigit():
                grown.append((int(name.split(".")[0]), name, entry.key))
        cursor = str(self.cj.snapshot.get("events_after", ""))
        now = [g for g in grown if g[0] in ended]
        rest = sorted((g for g in grown if g[0] not in ended), key=lambda g: (g[1] <= cursor, g[1]))
        for index, name, key in now + rest[:EVENT_READS_PER_JOB]:
            offset = offsets.get(name, 0)
            data = backend.read(key, start=offset)
            end = data.rfind(b"\n") + 1  # a line still being written waits for next cycle
            for line in data[:end].splitlines():
                self.apply(index, line)
            offsets[name] = offset + end
        if len(rest) > EVENT_READS_PER_JOB:
            self.events_after = rest[EVENT_READS_PER_JOB - 1][1]
        self.cj.event_offsets = offsets

    def apply(self, index: int, line: bytes) -> None:
        """Apply one line of an instance's events file.

        The file sits on storage the node writes, and on the VM the renderer runs
        unconfined: a line is checked like any input (its frame must be one of this
        instance's chunk, its seconds a sane number), and a bad line is skipped.
        """
        try:
            event = json.loads(line)
        except ValueError:
            return
        task = self.tasks.get(index)
        if task is None or not isinstance(event, dict):
            return
        kind = event.get("event")
        frame = event.get("frame")
        about_a_frame = kind in ("frame_started", "frame_done", "frame_failed")
        if about_a_frame and (not isinstance(frame, int) or frame not in self.frames_of(task)):
            log.warning("cloud job %s instance %s: ignored %.200r", self.cj.pk, index, line)
            return
        if task.state == TaskState.QUEUED and kind != "finished":
            task = self.start(task, None)  # running before the API said so
        if kind == "frame_started":
            services.frame_started(task, int(event["frame"]))
        elif kind == "frame_done":
            # The event file sits on storage the node writes: a name is trusted only if it
            # is a frame file name of this job (never "..", never another folder).
            pattern = _frame_pattern(self.job)
            names = [PurePosixPath(str(p)).name for p in event.get("outputs") or []]
            names = [n for n in names if pattern.match(n)]
            services.frame_done(
                task,
                int(event["frame"]),
                seconds=_seconds(event.get("seconds")),
                output_url=storage.join(self.job.output_url, names[0]) if names else "",
                thumbnail_url="",  # made by finish() once OutputMapping uploaded the file
            )
        elif kind == "frame_failed":
            Frame.objects.filter(job_id=task.job_id, number=int(event["frame"])).update(
                failure_reason=str(event.get("reason", ""))[:2000]
            )
        elif kind == "finished":
            self.results[str(index)] = {
                "status": event.get("status"),
                "reason": str(event.get("reason") or ""),
                "exit_code": event.get("exit_code"),
            }

    def frames_of(self, task: Task) -> set[int]:
        if task.pk not in self._frames:
            self._frames[task.pk] = set(task.frame_set.values_list("number", flat=True))
        return self._frames[task.pk]

    def finish_instance(self, task: Task, inst: bc.InstanceStatus, status: bc.JobStatus) -> None:
        task = Task.objects.get(pk=task.pk)
        if task.state != TaskState.RUNNING:
            return
        ok = inst.state == "Finished"
        Task.objects.filter(pk=task.pk).update(**self.tails(task))
        agent = self.results.get(str(inst.index)) or {}
        reason = "" if ok else self.reason(inst, agent, status)
        # A frame is done when the agent found its file; an instance that ended without
        # saying so for a frame did not render it, whatever its exit state.
        unreported = list(
            task.frame_set.exclude(state=FrameState.DONE).values_list("number", flat=True)
        )
        if ok and unreported:
            ok = False
            reason = (
                f"instance {inst.index} ended without reporting frame(s) "
                f"{', '.join(map(str, unreported[:20]))}: no output file was found for them"
            )
        services.task_finished(
            task,
            ok=ok,
            reason=reason,
            exit_code=0 if ok else inst.exit_code,
            retryable=False,  # BatchCompute retried it already (MaxRetryCount)
        )

    def reason(self, inst: bc.InstanceStatus, agent: dict[str, Any], status: bc.JobStatus) -> str:
        parts = []
        if agent.get("reason"):
            parts.append(agent["reason"])  # the agent's own words
        elif inst.state == "Stopped":
            parts.append("stopped on BatchCompute")
        else:
            if inst.error_message:
                code = f"{inst.error_code}: " if inst.error_code else ""
                parts.append(f"{code}{inst.error_message}")
            elif inst.exit_code:
                parts.append(f"the node command exited with {inst.exit_code}")
            if stderr := self.tail(inst.stderr_path).strip():
                parts.append(f"node stderr: {stderr[-1000:]}")
        if status.message:
            parts.append(f"BatchCompute: {status.message}")
        if inst.retry_count:
            parts.append(f"after {inst.retry_count + 1} attempts")
        return "; ".join(parts) or f"instance {inst.index} {inst.state.lower()}"

    def tails(self, task: Task) -> dict[str, str]:
        folder = storage.join(self.job.output_url, "_logs", f"task-{task.index}/")
        names = {"agent.log": "agent_log_tail", "stdout.log": "stdout_tail"}
        names["stderr.log"] = "stderr_tail"
        try:
            backend, prefix = storage.resolve(folder)
            found = {e.name: e for e in backend.list(prefix).entries if not e.is_dir}
            return {
                column: _read_tail(backend, found[name].key, found[name].size)
                for name, column in names.items()
                if name in found
            }
        except storage.StorageError as exc:  # logs are a convenience: never fail over them
            log.warning("no log tails for %s: %s", task, exc)
            return {}

    def tail(self, url: str) -> str:
        if not url.startswith("oss://"):
            return ""
        try:
            backend, key = storage.resolve(url)
            return _read_tail(backend, key, backend.stat(key).size)
        except storage.StorageError:
            return ""

    def end(self, state: str, message: str) -> None:
        """The cloud job is over: chunks it left open fail with its message."""
        reason = f"the BatchCompute job {state.lower()}" + (f": {message}" if message else "")
        for task in Task.objects.filter(cloud_job=self.cj, state__in=OPEN):
            if task.state == TaskState.QUEUED:
                services.fail_unclaimed(task, reason)
            else:
                services.task_finished(
                    task, ok=False, reason=reason, exit_code=None, retryable=False
                )
        _close(self.cj, state, message)


def _read_tail(backend: storage.Storage, key: str, size: int | None) -> str:
    start = max(0, (size or 0) - TAIL_BYTES)
    return backend.read(key, start=start).decode("utf-8", errors="replace")


def _close(cloud_job: CloudJob, state: str, message: str, finished: bool = False) -> None:
    now = timezone.now()
    failed = Task.objects.filter(cloud_job=cloud_job, state=TaskState.FAILED).count()
    snapshot = {**cloud_job.snapshot, "failed": failed}
    CloudJob.objects.filter(pk=cloud_job.pk).update(
        state=CloudJobState.ENDED,
        cloud_state=state or cloud_job.cloud_state,
        message=message[:5000],
        ended_at=now,
        snapshot=snapshot,
        lease_until=None,
        **({"finished_at": now} if finished else {}),
    )
    log.info("cloud job %s ended %s %s", cloud_job.cloud_id or cloud_job.name, state, message)


# --- after the end -------------------------------------------------------------------------


def finish(cloud_job_id: int) -> int:
    """Outputs and thumbnails of an ended cloud job's frames; returns the thumbnails made.

    Frames are marked done from the agent's events while the node still holds the files;
    BatchCompute uploads them (OutputMapping) when the instance ends, so thumbnails (and
    output links the events did not carry) are made here, from the listed outputs.
    """
    if not _take_lease(cloud_job_id, CloudJobState.ENDED):
        return 0
    cloud_job = CloudJob.objects.select_related("job").get(pk=cloud_job_id)
    if cloud_job.finished_at is not None:
        CloudJob.objects.filter(pk=cloud_job_id).update(lease_until=None)
        return 0
    job = cloud_job.job
    made = 0
    try:
        backend, prefix = storage.resolve(job.output_url)
        pattern = _frame_pattern(job)
        by_number: dict[int, str] = {}
        for output in outputs.list_outputs(job):
            if (match := pattern.match(output.name)) and "/" not in output.name:
                by_number.setdefault(int(match.group(1)), output.url)
        frames = Frame.objects.filter(
            task__cloud_job=cloud_job, state=FrameState.DONE, thumbnail_url=""
        )
        for frame in frames:
            url = frame.output_url or by_number.get(frame.number, "")
            if not url:
                continue
            thumb = _thumbnail(backend, prefix, url)
            Frame.objects.filter(pk=frame.pk).update(output_url=url, thumbnail_url=thumb)
            made += bool(thumb)
        CloudJob.objects.filter(pk=cloud_job_id).update(finished_at=timezone.now())
    finally:
        CloudJob.objects.filter(pk=cloud_job_id).update(lease_until=None)
    return made


def _thumbnail(backend: storage.Storage, prefix: str, url: str) -> str:
    _, key = storage.resolve(url)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / PurePosixPath(key).name
        try:
            backend.download_file(key, path)
        except storage.NotFound:
            return ""
        data = thumbnails.make(path)
    if data is None:
        return ""
    thumb_key = f"{prefix}_thumbs/{path.stem}.jpg"
    backend.write(thumb_key, data, content_type="image/jpeg")
    return backend.url_for(thumb_key)


def release_due() -> int:
    """Delete ended cloud jobs per BATCHCOMPUTE_RELEASE, BATCHCOMPUTE_RELEASE_AFTER after."""
    policy = settings.BATCHCOMPUTE_RELEASE
    if policy == "never":
        return 0
    now = timezone.now()
    due = CloudJob.objects.filter(
        state=CloudJobState.ENDED,
        released_at__isnull=True,
        finished_at__isnull=False,
        ended_at__lte=now - timedelta(seconds=settings.BATCHCOMPUTE_RELEASE_AFTER),
    ).exclude(cloud_id="")
    if policy == "succeeded":  # keep failed ones for a look at the console
        due = due.filter(Q(cloud_state="Finished", snapshot__failed=0) | Q(stop_requested=True))
    released = 0
    for cloud_job in due.order_by("pk")[:100]:
        try:
            bc.get_client().delete_job(cloud_job.cloud_id)
        except bc.Conflict:
            continue
        CloudJob.objects.filter(pk=cloud_job.pk).update(released_at=now)
        released += 1
    return released


def instance_logs(task: Task) -> dict[str, str]:
    """Where BatchCompute put the logs of the chunk's instance: its stdout and stderr
    (``stdout.<jobId>.render.<instance>``) and the agent log (LogMapping), as OSS URLs.
    The renderer's own output is in ``task.log_url`` (agent.log, stdout.log, stderr.log)."""
    cloud_job = task.cloud_job
    if cloud_job is None or not cloud_job.cloud_id or task.cloud_instance is None:
        return {}
    suffix = f"{cloud_job.cloud_id}.{TASK}.{task.cloud_instance}"
    return {
        name: f"{cloud_job.log_url}{name}.{suffix}" for name in ("stdout", "stderr", "agent.log")
    }


# --- cancelling ----------------------------------------------------------------------------


def cancel(job: RenderJob) -> None:
    """Stop the job's cloud jobs (its rows are cancelled already).

    A stop that fails here raises ComputeError, saying so, and the poller stops it
    (``stop_requested``) at its next cycles; a submission in flight sees the flag and stops
    what it created.
    """
    active = list(CloudJob.objects.filter(job=job, state__in=ACTIVE))
    CloudJob.objects.filter(pk__in=[c.pk for c in active]).update(stop_requested=True)
    problems = []
    for cloud_job in active:
        if not cloud_job.cloud_id:
            continue
        try:
            bc.get_client().stop_job(cloud_job.cloud_id)
        except bc.NotFound:
            pass
        except ComputeError as exc:
            problems.append(str(exc))
    if problems:
        raise ComputeError(
            f"{'; '.join(problems)}. RenderHub tries again at every poll of its BatchCompute "
            "jobs until it has stopped."
        )
