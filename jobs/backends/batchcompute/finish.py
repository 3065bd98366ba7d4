"""After the end: thumbnails and output links of a cloud job's frames, then its release."""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from jobs import outputs
from jobs.choices import FrameState
from jobs.models import CloudJob, CloudJobState, Frame, Task, TaskAttempt
from renderhub import batchcompute as bc
from renderhub import storage, thumbnails
from renderhub.cloud import get_client

from .common import TASK, frame_pattern, take_lease


def finish(cloud_job_id: int) -> int:
    """Outputs and thumbnails of an ended cloud job's frames; returns the thumbnails made.

    Frames are marked done from the agent's events while the node still holds the files;
    BatchCompute uploads them (OutputMapping) when the instance ends, so thumbnails (and
    output links the events did not carry) are made here, from the listed outputs.
    """
    if not take_lease(cloud_job_id, CloudJobState.ENDED):
        return 0
    cloud_job = CloudJob.objects.select_related("job").get(pk=cloud_job_id)
    if cloud_job.finished_at is not None:
        CloudJob.objects.filter(pk=cloud_job_id).update(lease_until=None)
        return 0
    job = cloud_job.job
    made = 0
    try:
        backend, prefix = storage.resolve(job.output_url)
        pattern = frame_pattern(job)
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
        due = due.filter(
            Q(cloud_state=bc.State.FINISHED, snapshot__failed=0) | Q(stop_requested=True)
        )
    released = 0
    for cloud_job in due.order_by("pk")[:100]:
        try:
            get_client().delete_job(cloud_job.cloud_id)
        except bc.Conflict:
            continue
        CloudJob.objects.filter(pk=cloud_job.pk).update(released_at=now)
        released += 1
    return released


def instance_logs(task: Task | TaskAttempt) -> dict[str, str]:
    """Where BatchCompute put the logs of the chunk's instance (or of one attempt's: each
    attempt RenderHub starts is a cloud job of its own): its stdout and stderr
    (``stdout.<jobId>.render.<instance>``) and the agent log (LogMapping), as OSS URLs.
    The renderer's own output is in ``task.log_url`` (agent.log, stdout.log, stderr.log)."""
    cloud_job = task.cloud_job
    if cloud_job is None or not cloud_job.cloud_id or task.cloud_instance is None:
        return {}
    suffix = f"{cloud_job.cloud_id}.{TASK}.{task.cloud_instance}"
    return {
        name: f"{cloud_job.log_url}{name}.{suffix}" for name in ("stdout", "stderr", "agent.log")
    }
