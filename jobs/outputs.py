"""Finished outputs: listing them, signed links, and automatic download to the manager's disk."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from renderhub import storage

from .models import RenderJob

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Output:
    url: str
    name: str
    size: int | None


def list_outputs(job: RenderJob) -> list[Output]:
    """The job's output files (not its logs or thumbnails)."""
    backend, prefix = storage.resolve(job.output_url)
    return [
        Output(backend.url_for(e.key), e.key.removeprefix(prefix), e.size)
        for e in backend.walk(prefix)
        if not e.key.removeprefix(prefix).startswith(("_logs/", "_thumbs/"))
    ]


def signed_link(url: str, expires: int | None = None) -> str:
    backend, key = storage.resolve(url)
    return backend.signed_url(key, expires or settings.SIGNED_URL_TTL)


def download_job_outputs(job_id: int, target: Path | None = None) -> Path:
    """Copy the job's outputs to ``target`` (default: AUTO_DOWNLOAD_DIR/<project>/<job>/)."""
    job = RenderJob.objects.select_related("project").get(pk=job_id)
    backend, prefix = storage.resolve(job.output_url)
    target = (
        target
        or settings.AUTO_DOWNLOAD_DIR / job.project.name / prefix.rstrip("/").rsplit("/", 1)[-1]
    )
    count = 0
    for output in list_outputs(job):
        destination = target / output.name
        destination.parent.mkdir(parents=True, exist_ok=True)
        backend.download_file(prefix + output.name, destination)
        count += 1
    RenderJob.objects.filter(pk=job_id).update(downloaded_to=str(target))
    log.info("downloaded %d outputs of job %s to %s", count, job_id, target)
    return target
