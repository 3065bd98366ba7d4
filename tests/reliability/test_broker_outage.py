"""The broker dies mid-job and comes back empty (Redis without persistence): the job still
finishes, because the database, not the broker, is the source of truth."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jobs.choices import FrameState, JobState
from jobs.models import RenderJob
from tests.workers import wait_for

from .conftest import ROOT, process_env

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_redis(port: int, log: Path) -> subprocess.Popen[bytes]:
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1"]
    argv += ["--save", "", "--appendonly", "no"]
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    wait_for(lambda: _answers(port), timeout=10, what="redis accepts connections")
    return proc


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def test_a_job_survives_a_broker_restart(
    project, fake_software, cluster, scene_url, processes, settings, tmp_path
) -> None:
    settings.RENDER_HEARTBEAT_SECONDS = 1
    settings.RENDER_STALE_AFTER = 4
    settings.RENDER_REDISPATCH_AFTER = 5
    port = free_port()
    redis = start_redis(port, tmp_path / "redis.log")
    try:
        env = process_env(
            settings,
            CELERY_BROKER_URL=f"redis://127.0.0.1:{port}/0",
            CELERY_DEFAULT_QUEUE=f"renderhub-{cluster.name}",
        )
        processes.worker("w", [cluster.queue, f"renderhub-{cluster.name}"], env)
        processes.start("beat", ["beat", "-l", "info", "--pidfile="], env)
        wait_for(
            lambda: cluster.nodes.filter(name="w@test").exists(),
            timeout=60,
            what="worker reports in",
        )
        submit = subprocess.run(
            [sys.executable, "manage.py", "submit_render", "--project", project.name,
             "--software", fake_software.name, "--cluster", cluster.name,
             "--scene", scene_url, "--frames", "1-8", "--nodes", "2", "--param", "mode=steady"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        job = RenderJob.objects.get()
        assert f"#{job.pk}" in submit.stdout
        wait_for(
            lambda: job.frame_set.filter(state=FrameState.DONE).exists(),
            timeout=60,
            what="a frame is done",
        )

        redis.kill()  # a crash: every queued and unacknowledged message is gone
        redis.wait()
        time.sleep(3)
        redis = start_redis(port, tmp_path / "redis.log")

        def ended() -> bool:
            job.refresh_from_db()
            return not job.is_active

        try:
            wait_for(ended, timeout=120, what="the job ends after the broker came back", every=0.5)
        except AssertionError:
            tasks = list(job.tasks.values("index", "state", "attempts", "queued_at", "node"))
            print(tasks, processes.log("w")[-6000:], processes.log("beat")[-3000:], sep="\n")
            raise
        assert job.state == JobState.FINISHED, job.failure_reason
        assert job.frames_done == 8 and job.frames_failed == 0
        assert not job.frame_set.exclude(state=FrameState.DONE).exists()
    finally:
        redis.kill()
        redis.wait()
