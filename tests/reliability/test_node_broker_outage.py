"""The broker dies mid-job and comes back empty while render nodes without keys render it:
the job still finishes, every frame once. The manager's event drain, beat and a node run
as processes on a Redis of the test's own, which is killed and started again."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from jobs.choices import FrameState, JobState
from jobs.models import RenderJob
from tests.workers import wait_for

from .conftest import ROOT, crash_the_broker_mid_job, process_env

pytestmark = pytest.mark.django_db(transaction=True)  # own_redis skips without redis-server


def test_a_job_on_render_nodes_survives_a_broker_restart(
    project,
    fake_software,
    cluster,
    scene_url,
    processes,
    settings,
    tmp_path,
    live_server: Any,
    own_redis: Any,
) -> None:
    settings.RENDER_HEARTBEAT_SECONDS = 1
    settings.RENDER_STALE_AFTER = 4
    settings.RENDER_REDISPATCH_AFTER = 5
    broker = own_redis.url
    env = process_env(settings, CELERY_BROKER_URL=broker)
    processes.start("beat", ["beat", "-l", "info", "--pidfile="], env)
    drain = subprocess.Popen(
        [sys.executable, "manage.py", "node_events"], cwd=ROOT, env=env,
        stdout=open(tmp_path / "drain.log", "ab"), stderr=subprocess.STDOUT,  # noqa: SIM115
    )  # fmt: skip
    node_env = {k: env[k] for k in ("PATH", "LANG") if k in env} | {"HOME": str(tmp_path)}
    node = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "nodes" / "bare_node.py"),
         "--broker", broker, "--manager-url", live_server.url, "--cluster", cluster.name,
         "--name", "n@node", "-c", "2", "--pool", "threads", "--report-every", "1",
         "--work-dir", str(tmp_path / "node"), "--sandbox-path", str(ROOT / "tests"),
         "--sandbox-path", sys.prefix, "--sandbox-path", sys.base_prefix],
        cwd=ROOT, env=node_env, stdout=open(tmp_path / "node.log", "ab"),  # noqa: SIM115
        stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        wait_for(
            lambda: cluster.nodes.filter(name="n@node").exists(),
            timeout=60,
            what="the node reports in",
        )
        subprocess.run(
            [sys.executable, "manage.py", "submit_render", "--project", project.name,
             "--software", fake_software.name, "--cluster", cluster.name,
             "--scene", scene_url, "--frames", "1-8", "--nodes", "2",
             "--param", "mode=steady"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        job = RenderJob.objects.get()
        logs = ("node.log", "drain.log")
        crash_the_broker_mid_job(
            job, own_redis, timeout=150,
            explain=lambda: "\n".join((tmp_path / n).read_text()[-3000:] for n in logs),
        )  # fmt: skip
        assert job.state == JobState.FINISHED, job.failure_reason
        assert job.frames_done == 8 and job.frames_failed == 0
        assert not job.frame_set.exclude(state=FrameState.DONE).exists()
    finally:
        for proc in (node, drain):
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
