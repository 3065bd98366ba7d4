"""The broker dies mid-job and comes back empty (Redis without persistence): the job still
finishes, because the database, not the broker, is the source of truth."""

from __future__ import annotations

import subprocess
import sys

import pytest

from jobs.choices import FrameState, JobState
from jobs.models import RenderJob
from tests.workers import wait_for

from .conftest import ROOT, crash_the_broker_mid_job, process_env

pytestmark = pytest.mark.django_db(transaction=True)  # own_redis skips without redis-server


def test_a_job_survives_a_broker_restart(
    project, fake_software, cluster, scene_url, processes, settings, own_redis
) -> None:
    settings.RENDER_HEARTBEAT_SECONDS = 1
    settings.RENDER_STALE_AFTER = 4
    settings.RENDER_REDISPATCH_AFTER = 5
    env = process_env(
        settings,
        CELERY_BROKER_URL=own_redis.url,
        CELERY_DEFAULT_QUEUE=f"renderhub-{cluster.name}",
    )
    processes.worker("w", [cluster.queue, f"renderhub-{cluster.name}"], env)
    processes.start("beat", ["beat", "-l", "info", "--pidfile="], env)
    wait_for(
        lambda: cluster.nodes.filter(name="w@test").exists(), timeout=60, what="worker reports in"
    )
    submit = subprocess.run(
        [sys.executable, "manage.py", "submit_render", "--project", project.name,
         "--software", fake_software.name, "--cluster", cluster.name,
         "--scene", scene_url, "--frames", "1-8", "--nodes", "2", "--param", "mode=steady"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    job = RenderJob.objects.get()
    assert f"#{job.pk}" in submit.stdout

    def story() -> str:
        tasks = list(job.tasks.values("index", "state", "attempts", "queued_at", "node"))
        return "\n".join([str(tasks), processes.log("w")[-6000:], processes.log("beat")[-3000:]])

    crash_the_broker_mid_job(job, own_redis, timeout=120, explain=story)
    assert job.state == JobState.FINISHED, job.failure_reason
    assert job.frames_done == 8 and job.frames_failed == 0
    assert not job.frame_set.exclude(state=FrameState.DONE).exists()
