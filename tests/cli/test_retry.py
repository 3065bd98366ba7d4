from __future__ import annotations

from typing import Any

import pytest
from django.core.management.base import CommandError

from jobs.choices import FrameState, JobState, TaskState

from .conftest import render_task

pytestmark = pytest.mark.django_db


def test_it_requeues_the_failed_chunks(
    run: Any, submit: Any, scene_url: str, django_capture_on_commit_callbacks: Any
) -> None:
    job = submit(scene_url, "1-20", nodes=2)
    render_task(job.tasks.get(index=0))
    render_task(job.tasks.get(index=1), ok=False, frames=[11, 12], reason="crash")

    with django_capture_on_commit_callbacks() as callbacks:
        out = run("retry", str(job.pk)).out

    assert out == f"Retrying job #{job.pk}: 1 chunk queued again.\n"
    assert len(callbacks) == 2  # once committed: dispatch, and the state change announced
    job.refresh_from_db()
    assert (job.state, job.frames_done, job.frames_failed) == (JobState.RUNNING, 12, 0)
    task = job.tasks.get(index=1)
    assert (task.state, task.attempts, task.failure_reason) == (TaskState.QUEUED, 0, "")
    assert job.frame_set.filter(state=FrameState.QUEUED).count() == 8


def test_it_retries_a_cancelled_job(run: Any, submit: Any, scene_url: str) -> None:
    job = submit(scene_url, "1-20", nodes=2)
    run("cancel", str(job.pk))

    assert "2 chunks queued again" in run("retry", str(job.pk)).out
    job.refresh_from_db()
    assert job.state == JobState.QUEUED


def test_it_has_nothing_to_retry_on_a_finished_job(run: Any, submit: Any, scene_url: str) -> None:
    job = submit(scene_url, "1-2", nodes=1)
    render_task(job.tasks.get())
    assert run("retry", str(job.pk)).out == (
        f"Job #{job.pk} has no failed or cancelled chunks; nothing to retry.\n"
    )


def test_it_refuses_a_job_that_is_still_running(run: Any, submit: Any, scene_url: str) -> None:
    # Retrying now would release the chunks held back for the test frame.
    job = submit(scene_url, "1-20", nodes=2, test_frame_first=True)

    with pytest.raises(CommandError, match=rf"Job #{job.pk} is still queued; wait for it"):
        run("retry", str(job.pk))
    assert job.tasks.filter(state=TaskState.HELD).count() == 2


def test_it_hides_another_projects_job(run: Any, submit: Any, scene_url: str, charlie: Any) -> None:
    job = submit(scene_url)
    run("cancel", str(job.pk))
    with pytest.raises(CommandError, match=rf"^There is no job #{job.pk}\.$"):
        run("retry", str(job.pk), "--as-user", "charlie")
