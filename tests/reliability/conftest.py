"""Real processes for fault injection: render workers and beat as subprocesses that share
the test's database, broker and storage, so a test can SIGKILL them like a power cut.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from django.conf import settings as django_settings
from django.db import connection

from tests.jobs.conftest import fake_software  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]


def database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def process_env(settings: Any, **extra: str) -> dict[str, str]:
    """The environment that makes a subprocess see what this test sees."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "RENDERHUB_VAR_DIR": str(django_settings.VAR_DIR),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "LOCAL_STORAGE_ROOT": str(settings.LOCAL_STORAGE_ROOT),
        "STORAGE_URL": settings.STORAGE_URL,
        "RENDER_WORK_DIR": str(settings.RENDER_WORK_DIR),
        "RENDER_HEARTBEAT_SECONDS": str(settings.RENDER_HEARTBEAT_SECONDS),
        "RENDER_STALE_AFTER": str(settings.RENDER_STALE_AFTER),
        "NODE_HEARTBEAT_SECONDS": "1",
        "RENDER_REDISPATCH_AFTER": str(settings.RENDER_REDISPATCH_AFTER),
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,
        # The stand-in renderers are this repository's scripts: the sandbox may read them.
        "RENDER_SANDBOX_PATHS": ",".join(settings.RENDER_SANDBOX_PATHS),
    }
    env.update(extra)
    return env


class Processes:
    """Start celery workers/beat; kill them like a power cut; always clean up."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        with open(self.log_dir / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(
                [str(Path(sys.executable).parent / "celery"), "-A", "renderhub", *argv],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs[name] = proc
        return proc

    def worker(self, name: str, queues: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        argv = ["worker", "-Q", ",".join(queues), "-c", "1", "-n", f"{name}@test", "-l", "info"]
        return self.start(name, argv, env)

    def power_cut(self, name: str) -> None:
        """SIGKILL the worker and its pool children at once: nothing gets to clean up."""
        proc = self.procs[name]
        family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=False)]
        for p in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.send_signal(signal.SIGKILL)
        proc.wait(10)

    def dump_stacks(self) -> None:
        """Every live worker process writes its threads' stacks to its log (SIGUSR2,
        renderhub.celery): a test that timed out shows where a worker was stuck."""
        for proc in self.procs.values():
            with contextlib.suppress(psutil.NoSuchProcess):
                for p in [psutil.Process(proc.pid), *psutil.Process(proc.pid).children()]:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        p.send_signal(signal.SIGUSR2)
        time.sleep(1)

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait(20)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    try:
        yield procs
    finally:
        procs.stop_all()


class OwnRedis:
    """A Redis of the test's own without persistence: a crash loses every message in it."""

    def __init__(self, log: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log = log
        self.proc = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        from tests.workers import wait_for

        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        with open(self.log, "ab") as out:
            proc = subprocess.Popen([*argv, "--save", "", "--appendonly", "no"], stdout=out,
                                    stderr=subprocess.STDOUT)  # fmt: skip
        wait_for(self._answers, timeout=10, what="redis accepts connections")
        return proc

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def crash_and_restart(self, down_seconds: float = 3.0) -> None:
        """Killed, down a moment, started again empty."""
        self.stop()
        time.sleep(down_seconds)
        self.proc = self._start()

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def crash_the_broker_mid_job(
    job: Any, redis: OwnRedis, timeout: float, explain: Any = None
) -> None:
    """Once a frame of ``job`` is done, crash the broker and start it again empty; then
    wait for the job to end."""
    from jobs.choices import FrameState
    from tests.workers import wait_for

    wait_for(
        lambda: job.frame_set.filter(state=FrameState.DONE).exists(),
        timeout=60,
        what="a frame is done",
    )
    redis.crash_and_restart()  # every queued and unacknowledged message is gone

    def ended() -> bool:
        job.refresh_from_db()
        return not job.is_active

    wait_for(
        ended, timeout=timeout, every=0.5, what="the job ends after the broker came back",
        explain=explain,
    )  # fmt: skip


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server")
    redis = OwnRedis(tmp_path / "redis.log")
    try:
        yield redis
    finally:
        redis.stop()
