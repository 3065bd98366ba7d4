"""Submitting: claim a job's chunks for one cloud job, build its plan, create it.

What the node gets (paths, the specs file, mounts) is described in the package docstring.
"""

from __future__ import annotations

import json
import logging
import posixpath
import secrets
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from images.choices import Platform
from jobs import services
from jobs.choices import FrameState, TaskState
from jobs.models import CloudJob, CloudJobState, Frame, RenderJob, Task
from renderhub import batchcompute as bc
from renderhub import storage
from renderhub.cloud import get_client, tagged
from renderhub.compute import ComputeError

from .common import ACTIVE, OPEN, TASK, close, take_lease
from .package import node_command, node_package
from .scene import scene_spec

log = logging.getLogger(__name__)

CONTROL_DIR = "/renderhub/control/"
WORK_DIR = "/renderhub/work"
OUTPUT_DIR = "/renderhub/output"
PUBLISH_DIR = "/renderhub/publish/"
RETRY_SUBMIT_AFTER = timedelta(seconds=30)
FIND_WINDOW = timedelta(hours=6)  # how far back a resumed submission looks for its job


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
    """The row first, under its tagged name; a chunk another dispatch took is left out.

    The name (also the idempotent token) and the log folder end in a random part stored
    with the row: a RenderHub reinstalled or restored under the same deployment tag counts
    rows from 1 again, and must neither get nor overwrite the old install's cloud jobs.
    """
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
        unique = f"c{cloud_job.pk}-{secrets.token_hex(6)}"
        cloud_job.name = tagged(f"r{job.pk}-{unique}")
        cloud_job.instance_count = claimed
        cloud_job.log_url = storage.join(job.output_url, "_logs", f"cloud-{unique}/")
        cloud_job.save(update_fields=["name", "instance_count", "log_url"])
    return cloud_job


def launch(cloud_job: CloudJob) -> str:
    """Create the BatchCompute job of a claimed row; again after an interruption.

    A later attempt first looks for a job already carrying the row's name (the process may
    have died between creating it and saving its id), so no job is ever created twice.
    Returns the row's state: still SUBMITTING after a transient failure (retried later).
    """
    now = timezone.now()
    if not take_lease(cloud_job.pk, CloudJobState.SUBMITTING, submit_attempts=True):
        return cloud_job.state
    cloud_job.refresh_from_db()
    try:
        client = get_client()
        cloud_id = None
        if cloud_job.submit_attempts > 1:
            cloud_id = client.find_job(cloud_job.name, since=cloud_job.created_at - FIND_WINDOW)
        if cloud_id is None and cloud_job.stop_requested:
            close(cloud_job, bc.State.STOPPED, "cancelled before it was submitted", finished=True)
            return CloudJobState.ENDED
        if cloud_id is None:
            cloud_id = client.create_job(_plan(cloud_job))
        _record_submitted(cloud_job, cloud_id)
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
    if CloudJob.objects.filter(pk=cloud_job.pk, stop_requested=True).exists():
        try:  # cancelled while it was being created; the poller retries a failed stop
            client.stop_job(cloud_id)
        except bc.BatchComputeError as exc:
            log.warning("stopping %s failed, the poller retries: %s", cloud_job.name, exc)
    return CloudJobState.ACTIVE


def _record_submitted(cloud_job: CloudJob, cloud_id: str) -> None:
    CloudJob.objects.filter(pk=cloud_job.pk).update(
        cloud_id=cloud_id,
        state=CloudJobState.ACTIVE,
        cloud_state=bc.State.WAITING,
        submitted_at=timezone.now(),
        lease_until=None,
        error="",
    )
    log.info("submitted %s as BatchCompute job %s", cloud_job.name, cloud_id)


def _give_up(cloud_job: CloudJob, reason: str) -> None:
    log.warning("giving up on %s: %s", cloud_job.name, reason)
    close(cloud_job, "", reason, finished=True)
    for task in Task.objects.filter(cloud_job=cloud_job, state=TaskState.QUEUED):
        services.fail_unclaimed(task, reason)


# --- what the node gets ------------------------------------------------------------------


def _plan(cloud_job: CloudJob) -> bc.JobPlan:
    job = RenderJob.objects.select_related("project__image", "software", "cluster__image").get(
        pk=cloud_job.job_id
    )
    tasks = list(cloud_job.tasks.order_by("cloud_instance"))
    mappings = list(job.project.mappings.all())
    control = f"{CONTROL_DIR}{posixpath.basename(cloud_job.log_url.rstrip('/'))}/"
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
        command_line=node_command(),
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
    staged = scene_spec(job, CONTROL_DIR)  # the scene and exactly its files
    stem = posixpath.splitext(posixpath.basename(staged["scene"]))[0]
    return {
        "version": 1,
        "job": job.pk,
        "command": job.software.command_template,
        "variables": job.parameters,
        **staged,
        "cpus": settings.RENDER_THREADS,  # 0: the node uses all its cores
        "work_dir": WORK_DIR,
        "output_dir": OUTPUT_DIR,
        "publish_dir": PUBLISH_DIR.rstrip("/"),
        "output_name": f"{stem}_####",
        "progress_parser": job.software.progress_parser,
        "timeout": settings.RENDER_TIMEOUT,
        "stall_timeout": settings.RENDER_STALL_TIMEOUT,
    }


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
    data, name = node_package()
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
