"""Job (and workflow) signals -> webhooks and e-mail. Connected in NotificationsConfig.ready().

The signals are sent after the job's change commits, from web requests and render
workers alike: a failing subscriber must never break the render pipeline, so every
error is logged here and swallowed.
"""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import receiver

from jobs.signals import frame_failed, job_state_changed
from workflows.signals import run_state_changed

from . import services

log = logging.getLogger(__name__)


@receiver(job_state_changed, dispatch_uid="notifications.job_state_changed")
def on_job_state_changed(
    sender: Any, job_id: int, old_state: str, new_state: str, **kwargs: Any
) -> None:
    try:
        services.job_state_changed(job_id, old_state, new_state)
    except Exception:
        log.exception("could not queue notifications of job %s %s", job_id, new_state)


@receiver(frame_failed, dispatch_uid="notifications.frame_failed")
def on_frame_failed(
    sender: Any, job_id: int, frame_number: int, reason: str, **kwargs: Any
) -> None:
    try:
        services.frame_failed(job_id, frame_number, reason)
    except Exception:
        log.exception("could not queue webhooks for job %s frame %s", job_id, frame_number)


@receiver(run_state_changed, dispatch_uid="notifications.run_state_changed")
def on_run_state_changed(
    sender: Any, run_id: int, old_state: str, new_state: str, **kwargs: Any
) -> None:
    try:
        services.workflow_state_changed(run_id, old_state, new_state)
    except Exception:
        log.exception("could not queue notifications of workflow run %s %s", run_id, new_state)
