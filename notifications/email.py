"""E-mail to the submitter when their render job or workflow run ends (Django's e-mail
backend: console by default, SMTP with EMAIL_BACKEND and EMAIL_HOST)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.mail import send_mail

from jobs.models import RenderJob
from renderhub.cli import format_duration
from workflows.models import WorkflowRun


def mailable(user: Any) -> bool:
    """Someone to tell: a submitter who is still active and has an address."""
    return user is not None and user.is_active and bool(user.email)


def _send(user: Any, message: tuple[str, str]) -> bool:
    if not mailable(user):
        return False
    subject, body = message
    send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [user.email])
    return True


def job_ended_message(job: RenderJob, state: str) -> tuple[str, str]:
    """Subject and plain-text body."""
    subject = f"[RenderHub] Job #{job.pk} {job.name} {state}"
    lines = [
        f"Render job #{job.pk} {job.name} in project {job.project.name} is {state}.",
        "",
        f"Frames:   {job.frames_done} of {job.frame_count} done, {job.frames_failed} failed",
        f"Duration: {format_duration(job.duration)}",
        f"Outputs:  {job.output_url}",
    ]
    if job.failure_reason:
        lines += ["", "Reason:", job.failure_reason[:2000]]
    if settings.RENDERHUB_SITE_URL:
        lines += ["", f"{settings.RENDERHUB_SITE_URL}/admin/jobs/renderjob/{job.pk}/change/"]
    return subject, "\n".join(lines) + "\n"


def send_job_ended(job_id: int, state: str) -> bool:
    """Mail the submitter; False when there is nobody to tell (no user, no address)."""
    job = RenderJob.objects.select_related("project", "submitted_by").filter(pk=job_id).first()
    return job is not None and _send(job.submitted_by, job_ended_message(job, state))


def run_ended_message(run: WorkflowRun, state: str) -> tuple[str, str]:
    subject = f"[RenderHub] Workflow #{run.pk} {run.name} {state}"
    lines = [
        f"Workflow run #{run.pk} {run.name} in project {run.project.name} is {state}.",
        "",
        f"Engine:   {run.get_engine_display()}",
        f"Duration: {format_duration(run.duration)}",
        f"Outputs:  {run.outputs_dir}",
    ]
    if run.failure_message:
        lines += ["", "Reason:", run.failure_message[:2000]]
    if settings.RENDERHUB_SITE_URL:
        lines += ["", f"{settings.RENDERHUB_SITE_URL}/workflows/{run.pk}/"]
    return subject, "\n".join(lines) + "\n"


def send_run_ended(run_id: int, state: str) -> bool:
    run = WorkflowRun.objects.select_related("project", "submitted_by").filter(pk=run_id).first()
    return run is not None and _send(run.submitted_by, run_ended_message(run, state))
