"""A manager and render nodes without keys, as real processes where it matters.

``manager``: the test's Django site served live (the nodes' links to local-disk storage
point at it) and the event drain in a thread, on the test's Redis. ``nodes``: render
nodes started as ``python -m renderhub.node`` in processes of their own, whose whole
environment is ``PATH``, ``HOME`` and ``LANG`` (no database URL, no secret key, no
storage root, no cloud key) and which cannot import Django, a database driver or a
storage SDK (``bare_node.py``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.jobs.conftest import fake_software  # noqa: F401
from tests.workers import wait_for

ROOT = Path(__file__).resolve().parents[2]
REDIS = os.environ.get("CELERY_BROKER_URL", "")

needs_redis = pytest.mark.skipif(
    not REDIS.startswith("redis://"), reason="render nodes reach the manager through Redis"
)


@dataclass
class Manager:
    url: str
    broker: str


@pytest.fixture
def manager(live_server: Any, settings: Any) -> Iterator[Manager]:
    """The live site and the event drain (claims, node reports, events)."""
    from jobs.event_drain import drain
    from renderhub.node_events import events_connection

    settings.RENDER_HEARTBEAT_SECONDS = 1
    settings.NODE_HEARTBEAT_SECONDS = 1
    stop = threading.Event()
    connection = events_connection(settings.CELERY_BROKER_URL)
    name = f"test-{uuid.uuid4().hex[:8]}"
    thread = threading.Thread(
        target=drain, args=(connection, stop), kwargs={"name": name}, daemon=True
    )
    thread.start()
    try:
        yield Manager(live_server.url, settings.CELERY_BROKER_URL)
    finally:
        stop.set()
        thread.join(30)
        connection.release()


class Nodes:
    """Render nodes as processes; killed like a power cut or stopped at the end."""

    def __init__(self, manager: Manager, log_dir: Path, settings: Any) -> None:
        self.manager = manager
        self.log_dir = log_dir
        self.settings = settings
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def env(self) -> dict[str, str]:
        return {
            "PATH": os.environ["PATH"],
            "HOME": str(self.log_dir),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
        }

    def start(
        self,
        name: str,
        cluster: Any,
        *,
        slots: int = 1,
        broker: str = "",
        extra: Sequence[str] = (),
    ) -> subprocess.Popen[bytes]:
        """Node ``<name>@node`` for ``cluster``; with ``broker``, that credential (a
        cluster's node user: its private queue) instead of the manager's; ``extra``
        options after the others."""
        argv = [
            # python -m renderhub.node, with Django and the storage SDKs out of reach.
            sys.executable, str(Path(__file__).with_name("bare_node.py")),
            "--broker", broker or self.manager.broker,
            "--manager-url", self.manager.url,
            "--cluster", cluster.name,
            "--name", f"{name}@node",
            "-c", str(slots),
            "--pool", "threads",
            "--report-every", "1",
            "--work-dir", str(self.log_dir / name),
            # The stand-in renderers are this repository's scripts, run by this Python.
            "--sandbox-path", str(ROOT / "tests"),
            "--sandbox-path", sys.prefix,
            "--sandbox-path", sys.base_prefix,
        ]  # fmt: skip
        if broker:
            argv.append("--private-queue")
        argv += list(extra)
        with open(self.log_dir / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(
                argv, cwd=ROOT, env=self.env(), stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        self.procs[name] = proc
        wait_for(
            lambda: cluster.nodes.filter(name=f"{name}@node").exists(),
            timeout=60,
            what=f"node {name} reports in",
            explain=lambda: self.log(name)[-3000:],
        )
        return proc

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")

    def power_cut(self, name: str) -> None:
        proc = self.procs[name]
        for p in [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.send_signal(signal.SIGKILL)
        proc.wait(10)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait(30)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


@pytest.fixture
def nodes(manager: Manager, tmp_path: Path, settings: Any) -> Iterator[Nodes]:
    group = Nodes(manager, tmp_path, settings)
    try:
        yield group
    finally:
        group.stop_all()
