"""The render benchmarks on the path of render nodes without keys (``--path node``).

Instead of a render worker that reads the database, three processes: the manager's site
(gunicorn, serving the nodes' links and uploads to local-disk storage), its event drain
(``manage.py node_events``: claims, reports, events) and a render node
(``python -m renderhub.node``, 2 slots) whose environment holds the broker's address only.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Per run of running_node: CPU seconds of the site, the drain and the node's own processes
# (its renderers, agents and sandboxes not counted): what the path costs besides rendering.
CPU_SECONDS: list[dict[str, float]] = []


def _cpu(proc: subprocess.Popen[bytes]) -> float:
    import psutil

    try:
        root = psutil.Process(proc.pid)
        family = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0.0
    for member in family:
        try:
            line = " ".join(member.cmdline())
            if member is not root and "renderhub.node" not in line and "gunicorn" not in line:
                continue  # an agent, its sandbox or its renderer: the render's own work
            times = member.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            continue
    return total


@contextlib.contextmanager
def running_node(var: Path, cluster_id: int, sandbox: str) -> Iterator[None]:
    """Site, drain and node (named ``bench@…``) up until the block ends."""
    from render import wait_for_node

    from clusters.models import Cluster

    cluster = Cluster.objects.get(pk=cluster_id)
    broker = os.environ.get("CELERY_BROKER_URL", "")
    if not broker.startswith("redis://"):
        raise SystemExit("--path node needs --broker redis://…")
    port = _free_port()
    env = {**os.environ, "RENDER_SANDBOX": sandbox}
    level = os.environ.get("BENCH_WORKER_LOG_LEVEL", "warning")
    bin_dir = Path(sys.executable).parent
    node_env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    commands = {
        "site": (
            [str(bin_dir / "gunicorn"), "renderhub.wsgi", "--bind", f"127.0.0.1:{port}",
             "--workers", "3", "--log-level", level],
            env,
        ),
        "drain": ([sys.executable, "manage.py", "node_events"], env),
        "node": (
            [sys.executable, "-m", "renderhub.node", "--broker", broker,
             "--manager-url", f"http://127.0.0.1:{port}", "--cluster", cluster.name,
             "--name", f"bench@{socket.gethostname()}", "-c", "2", "--report-every", "2",
             "--work-dir", str(var / "node"), "--loglevel", level,
             *(f"--sandbox-path={p}" for p in sorted({sys.prefix, sys.base_prefix}))],
            node_env,
        ),
    }  # fmt: skip
    started = time.time()
    procs = []
    with open(var / "node-path.log", "ab") as log:
        try:
            for argv, environment in commands.values():
                procs.append(
                    subprocess.Popen(
                        argv, cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT
                    )
                )
            wait_for_node(cluster_id, started)
            yield
        finally:
            CPU_SECONDS.append(
                {name: round(_cpu(proc), 2) for name, proc in zip(commands, procs, strict=False)}
            )
            for proc in reversed(procs):
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
