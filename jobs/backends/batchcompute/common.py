"""What the submitting, polling and finishing of cloud jobs share: names, leases, closing."""

from __future__ import annotations

import logging
import posixpath
from datetime import timedelta
from typing import Any

from django.db.models import F, Q
from django.utils import timezone

from jobs.choices import TaskState
from jobs.models import CloudJob, CloudJobState, RenderJob, Task
from renderhub.agent.progress import output_regex

log = logging.getLogger(__name__)

TASK = "render"  # the one task of every render job's DAG
LEASE = timedelta(seconds=120)  # one poller (or submitter) per cloud job at a time
OPEN = (TaskState.QUEUED, TaskState.RUNNING)
ACTIVE = (CloudJobState.SUBMITTING, CloudJobState.ACTIVE)


def take_lease(pk: int, state: str, submit_attempts: bool = False) -> bool:
    now = timezone.now()
    extra: dict[str, Any] = {"submit_attempts": F("submit_attempts") + 1} if submit_attempts else {}
    return bool(
        CloudJob.objects.filter(pk=pk, state=state)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .update(lease_until=now + LEASE, **extra)
    )


def frame_pattern(job: RenderJob) -> Any:
    stem = posixpath.splitext(posixpath.basename(job.scene_url))[0]
    return output_regex(f"{stem}_####")


def close(cloud_job: CloudJob, state: str, message: str, finished: bool = False) -> None:
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
