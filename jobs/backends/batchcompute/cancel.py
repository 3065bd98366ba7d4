"""Cancelling: stop a render job's cloud jobs."""

from __future__ import annotations

from jobs.models import CloudJob, RenderJob
from renderhub import batchcompute as bc
from renderhub.cloud import get_client
from renderhub.compute import ComputeError

from .common import ACTIVE


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
            get_client().stop_job(cloud_job.cloud_id)
        except bc.NotFound:
            pass
        except ComputeError as exc:
            problems.append(str(exc))
    if problems:
        raise ComputeError(
            f"{'; '.join(problems)}. RenderHub tries again at every poll of its BatchCompute "
            "jobs until it has stopped."
        )
