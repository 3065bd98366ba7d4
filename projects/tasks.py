"""Celery tasks: thin wrappers around the services."""

from __future__ import annotations

from celery import shared_task

from . import uploads


@shared_task(ignore_result=True)
def clean_stale_uploads() -> int:
    """Delete partial browser uploads nobody touched for UPLOAD_STALE_SECONDS (beat: hourly)."""
    return uploads.clean_stale_uploads()
