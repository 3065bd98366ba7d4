"""A renderer that hangs (prints nothing) is killed after RENDER_STALL_TIMEOUT, retried,
and the job fails with a reason that says so; one that runs past RENDER_TIMEOUT likewise."""

from __future__ import annotations

import pytest

from jobs import services
from jobs.choices import FrameState, JobState
from tests.workers import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.embedded]


@pytest.fixture
def hung_job(project, fake_software, cluster, scene_url, render_worker, settings):
    settings.RENDER_TASK_MAX_ATTEMPTS = 2

    def submit():
        [job] = services.submit_render(
            services.RenderRequest(
                project=project, software=fake_software, cluster=cluster, scenes=[scene_url],
                frames="1-2", nodes=1, parameters={"mode": "slow"},
            )
        )  # fmt: skip
        return job

    return submit


def test_a_silent_renderer_is_killed_and_retried(hung_job, settings) -> None:
    settings.RENDER_STALL_TIMEOUT = 2
    job = wait_for(hung_job(), timeout=60)
    assert job.state == JobState.FAILED
    task = job.tasks.get()
    assert task.attempts == 2
    assert "no output" in task.failure_reason.lower() or "stall" in task.failure_reason.lower()
    assert job.frame_set.filter(state=FrameState.FAILED).count() == 2


def test_a_render_past_the_hard_limit_is_killed(hung_job, settings) -> None:
    settings.RENDER_STALL_TIMEOUT = 0
    settings.RENDER_TIMEOUT = 2
    job = wait_for(hung_job(), timeout=60)
    assert job.state == JobState.FAILED
    assert "time" in job.tasks.get().failure_reason.lower()
