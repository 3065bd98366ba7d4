"""The node's Celery app: ``jobs.tasks.render_chunk`` as a node without keys runs it, and
the node's own reports (its slots, CPU and memory) every few seconds.

The app knows the broker and nothing else; what it renders, where from and where to, comes
in the manager's answer to each claim (``renderhub.node.claims``).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import worker_init, worker_shutdown

from renderhub.agent import bytecode
from renderhub.node_events import EventSender, events_connection

from .chunk import NodeChunk, NodeConfig
from .claims import Control, NoAnswer
from .fork_guard import FORK_GUARD

log = logging.getLogger(__name__)

# Seconds a slot waits for the manager to answer a claim: a thousand nodes claiming at once
# are all answered in about half a minute (docs/BENCHMARKS.md, the fleet).
CLAIM_TIMEOUT = 120.0

app = Celery("renderhub-node")
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    # Nothing but the cluster's queue: no remote control, no task events (a node's Redis
    # user reaches its cluster's keys only, clusters.node_users).
    worker_enable_remote_control=False,
    worker_send_task_events=False,
    worker_hijack_root_logger=True,
    broker_connection_retry_on_startup=True,
)


@dataclass
class Settings:
    """What ``python -m renderhub.node`` was told (set before the worker starts)."""

    broker: str = ""
    config: NodeConfig | None = None
    clusters: list[str] = field(default_factory=list)
    report_every: float = 10.0


SETTINGS = Settings()


class Slot:
    """One slot's broker connection, event sender and control queue (per process and
    thread: a prefork child or a thread of the threads pool)."""

    def __init__(self, node: str) -> None:
        self.connection = events_connection(SETTINGS.broker)
        self.sender = EventSender(self.connection, node)
        self.sender.start()
        self.control = Control(events_connection(SETTINGS.broker), node, SETTINGS.clusters[0])


_slots: dict[tuple[int, int], Slot] = {}
_slots_lock = threading.Lock()


def slot(node: str) -> Slot:
    key = (os.getpid(), threading.get_ident())
    with _slots_lock:
        if key not in _slots:
            _slots[key] = Slot(node)
        return _slots[key]


@app.task(name="jobs.tasks.render_chunk", bind=True, acks_late=True, reject_on_worker_lost=True)
def render_chunk(self: Any, task_id: int, ticket: str = "") -> str:
    config = SETTINGS.config
    assert config is not None, "start nodes with python -m renderhub.node"
    mine = slot(config.name)
    try:
        answer = mine.control.claim(int(task_id), str(ticket), CLAIM_TIMEOUT)
    except NoAnswer as exc:  # the manager sends the chunk again when it sees us idle
        log.warning("%s", exc)
        return "no answer"
    if answer.get("kind") != "chunk":
        log.info("chunk %s is not ours: %s", task_id, answer.get("reason"))
        return "skipped"
    chunk = NodeChunk(answer, config, mine.sender, mine.control)
    try:
        return chunk.run()
    finally:
        chunk.cleanup()


# --- the node's own reports ------------------------------------------------------------


def node_facts(concurrency: int, threads: int, bytecode_dir: Path) -> dict[str, Any]:
    import psutil

    try:
        address: str | None = socket.gethostbyname(socket.gethostname())
    except OSError:
        address = None
    return {
        "cpu_percent": psutil.cpu_percent(interval=None),
        "memory_percent": psutil.virtual_memory().percent,
        "cpu_count": os.cpu_count(),
        "concurrency": concurrency,
        "render_threads": threads,  # the manager costs its frames by it (jobs.machine_share)
        "ip_address": address,
        "compiled_python": bytecode.describe(str(bytecode_dir)),
    }


class Reporter:
    """Reports the node every ``report_every`` seconds from the worker's main process."""

    def __init__(self, node: str, concurrency: int, threads: int, bytecode_dir: Path) -> None:
        self.node = node
        self.concurrency = concurrency
        self.threads = threads
        self.bytecode_dir = bytecode_dir
        self.stop = threading.Event()
        self.control = Control(events_connection(SETTINGS.broker), node, SETTINGS.clusters[0])
        self.thread = threading.Thread(target=self._loop, daemon=True, name="node-report")

    def send(self, state: str = "") -> None:
        self.control.send(
            {
                "kind": "node",
                "node": self.node,
                "clusters": SETTINGS.clusters,
                "state": state,
                **node_facts(self.concurrency, self.threads, self.bytecode_dir),
            }
        )

    def _loop(self) -> None:
        while not self.stop.is_set():
            try:
                with FORK_GUARD.round():  # the pool never forks in the middle of one
                    self.send()
            except Exception:  # the broker away for a moment: the next report goes
                log.exception("could not report the node")
            self.stop.wait(SETTINGS.report_every)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        try:
            self.send("offline")
        except Exception:
            log.exception("could not report the node offline")


_reporter: dict[str, Reporter] = {}


@worker_init.connect
def _start_reports(sender: Any = None, **kwargs: Any) -> None:
    if getattr(sender, "app", None) is not app or SETTINGS.config is None:
        return
    config = SETTINGS.config
    slots = getattr(sender, "concurrency", None) or 1
    reporter = Reporter(config.name, slots, config.cpus, config.bytecode_dir)
    _reporter["main"] = reporter
    reporter.thread.start()
    log.info("render node %s serving %s", SETTINGS.config.name, ", ".join(SETTINGS.clusters))


@worker_shutdown.connect
def _stop_reports(sender: Any = None, **kwargs: Any) -> None:
    if reporter := _reporter.pop("main", None):
        reporter.close()
        time.sleep(0)  # let the offline report leave before the process ends
