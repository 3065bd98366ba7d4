from __future__ import annotations

from typing import Any

import pytest
from django.core.management.base import CommandError

from jobs.choices import FrameState, JobState, TaskState
from jobs.models import RenderJob
from tests.compute.fixtures import assert_says_the_stop_is_retried, assert_stopped_by_the_poller

from .conftest import render_task, start_task

pytestmark = pytest.mark.django_db


def test_it_cancels_the_open_chunks(run: Any, submit: Any, scene_url: str) -> None:
    job = submit(scene_url, "1-30", nodes=3)
    render_task(job.tasks.get(index=0))
    start_task(job.tasks.get(index=1))

    out = run("cancel", str(job.pk)).out

    assert out == f"Cancelled job #{job.pk} (2 chunks stopped).\n"
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED and job.finished_at is not None
    assert list(job.tasks.values_list("state", flat=True)) == [
        TaskState.DONE,
        TaskState.CANCELLED,
        TaskState.CANCELLED,
    ]
    assert job.frame_set.filter(state=FrameState.CANCELLED).count() == 20


def test_it_says_when_there_is_nothing_to_cancel(run: Any, submit: Any, scene_url: str) -> None:
    job = submit(scene_url, "1-2", nodes=1)
    render_task(job.tasks.get())

    assert run("cancel", f"#{job.pk}").out == (
        f"Job #{job.pk} is already finished; nothing to cancel.\n"
    )
    assert job.tasks.get().state == TaskState.DONE


def test_it_lets_members_cancel_and_hides_other_jobs(
    run: Any, submit: Any, scene_url: str, bob: Any, charlie: Any
) -> None:
    job = submit(scene_url)

    with pytest.raises(CommandError, match=rf"^There is no job #{job.pk}\.$"):
        run("cancel", str(job.pk), "--as-user", "charlie")
    job.refresh_from_db()
    assert job.state == JobState.QUEUED

    assert "Cancelled" in run("cancel", str(job.pk), "--as-user", "bob").out
    with pytest.raises(CommandError, match=r"^There is no job #77\.$"):
        run("cancel", "77")


def test_it_warns_when_the_cloud_job_could_not_be_stopped_yet(
    run: Any, unstoppable_cloud_job: RenderJob, fake_bc: Any
) -> None:
    job = unstoppable_cloud_job
    result = run("cancel", str(job.pk))  # no CommandError: the job is cancelled
    assert result.out == f"Cancelled job #{job.pk} (3 chunks stopped).\n"
    assert_says_the_stop_is_retried(job, result.err.rstrip("\n"))
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED
    assert_stopped_by_the_poller(job, fake_bc)
