"""Fleet benchmark: N simulated render nodes reporting through the real Redis broker to one
manager that applies their events to PostgreSQL (issue 15).

Each simulated node claims one chunk of a running job over the broker (the chunk's ticket,
as its message carries it; every node's claim is sent at once, as when a job is sent to
idle nodes; ``renderhub.node.claims``), then speaks the node protocol of
``renderhub.node_events`` with the token the manager's answer gave: a frame every 2 s
(``frame_started`` and ``frame_done``), a progress tick every 0.5 s and a heartbeat with CPU
every 5 s, flushed as one message per
node every ``--flush`` seconds, on the node's own broker connection. Nodes share
``--procs`` processes (one loop each, no renderer). The manager is ``jobs.event_drain`` in
a process of its own, with one database connection.

Reported per N: how long claims took to be answered (median, p95, the last one), the
database connections in use on the bench database (most seen, this
script's own sampling connection not counted), event-to-row latency (from the node's
timestamp to the commit that applied it) and publish-to-row latency (from the message
leaving the node to that commit: the broker's and the manager's share), each median and
p95, the manager's CPU (its process' CPU seconds per wall second), the broker's memory
(Redis ``used_memory``, most seen) and lost or doubled events (events sent against events
applied; frames reported done against frames done in the database: both must be 0).

Usage: ``python bench/fleet.py [--nodes 100,300,1000] [--seconds 30]``
(PostgreSQL ``--database-url``, default ``renderhub_bench_fleet``; Redis ``--broker``,
default db 9 on 127.0.0.1, emptied first).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the node processes import renderhub.node_events from here
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/renderhub_bench_fleet"
DEFAULT_BROKER = "redis://127.0.0.1:6379/9"
FRAME_EVERY, PROGRESS_EVERY, HEARTBEAT_EVERY = 2.0, 0.5, 5.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB))
    parser.add_argument("--broker", default=DEFAULT_BROKER)
    parser.add_argument("--nodes", default="100,300,1000")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--procs", type=int, default=8, help="processes the nodes share")
    parser.add_argument("--flush", type=float, default=1.0, help="seconds between a node's sends")
    parser.add_argument(
        "--node-facts",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the nodes' cores and slots known, as their heartbeats leave them: the drain "
        "works out each frame's full-node cost (jobs.machine_share)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    return parser.parse_args()


def ensure_database(url: str) -> None:
    parts = urlsplit(url)
    command = ["createdb", "-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 5432)]
    command += ["-U", parts.username or "postgres", parts.path.lstrip("/")]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode and "already exists" not in result.stderr:
        raise SystemExit(f"createdb failed: {result.stderr.strip()}")


def django_setup(database_url: str, broker: str) -> None:
    os.environ.update(
        RENDERHUB_VAR_DIR=os.environ.get("RENDERHUB_VAR_DIR")
        or tempfile.mkdtemp(prefix="renderhub-bench-fleet-"),
        DATABASE_URL=database_url,
        CELERY_BROKER_URL=broker,
        DJANGO_SETTINGS_MODULE="renderhub.settings",
    )
    import django

    django.setup()


def make_job(nodes: int, frames: int, node_facts: bool = True) -> list[int]:
    """A running job of ``nodes`` chunks of ``frames`` frames, each sent and waiting for its
    node's claim (with ``node_facts``, the node's row with its cores and slots); the
    chunks' ids."""
    from django.conf import settings
    from django.db import transaction
    from django.utils import timezone

    from clusters.models import Cluster, ClusterNode
    from images.models import ComputeImage, Software
    from jobs.choices import JobState, TaskState
    from jobs.models import Frame, RenderJob, Task
    from projects.models import Project, StorageMapping
    from renderhub import storage

    image, _ = ComputeImage.objects.get_or_create(name="fleet", defaults={"image_id": "fleet"})
    software, _ = Software.objects.get_or_create(
        image=image, name="sim", defaults={"command_template": ["true", "{scene}"]}
    )
    cluster, _ = Cluster.objects.get_or_create(name="fleet", defaults={"image": image})
    # A project of this run's own (the database may hold earlier runs', whose storage was
    # another scratch folder), the scene in its storage: a node fetches nothing else.
    root = storage.join(settings.STORAGE_URL, "fleet/")
    project = Project.objects.create(
        name=f"fleet-{uuid.uuid4().hex[:8]}", image=image, output_prefix=root
    )
    StorageMapping.objects.create(project=project, source=root, destination="/mnt/fleet/")
    scene = storage.join(root, "scene.blend")
    backend, key = storage.resolve(scene)
    backend.write(key, b"BLENDER-v304 a stand-in: the simulated nodes fetch nothing")
    now = timezone.now()
    with transaction.atomic():
        job = RenderJob.objects.create(
            project=project,
            software=software,
            cluster=cluster,
            name=f"fleet-{nodes}",
            scene_url=scene,
            # What a node is told to fetch (jobs/scene_manifest.py): the scene alone.
            scene_files={
                "version": 1,
                "scene": "scene.blend",
                "missing": [],
                "folder": False,
                "files": [{"url": scene, "place": "scene.blend"}],
            },
            frame_spec=f"1-{nodes * frames}",
            frame_count=nodes * frames,
            node_count=nodes,
            state=JobState.RUNNING,
            output_url=storage.join(root, f"out-{nodes}/"),
            started_at=now,
        )
        tasks = Task.objects.bulk_create(
            Task(
                job=job,
                index=i,
                frames=list(range(i * frames + 1, (i + 1) * frames + 1)),
                state=TaskState.QUEUED,
                queued_at=now,  # sent: each simulated node claims its own
            )
            for i in range(nodes)
        )
        Frame.objects.bulk_create(
            (Frame(job=job, task=t, number=n) for t in tasks for n in t.frames), batch_size=5000
        )
        if node_facts:
            ClusterNode.objects.bulk_create(
                (
                    ClusterNode(cluster=cluster, name=f"sim-{t.pk}", cpu_count=2, concurrency=1)
                    for t in tasks
                ),
                batch_size=5000,
            )
    return [t.pk for t in tasks]


# --- the simulated nodes ------------------------------------------------------------------


def run_nodes(chunks: list[tuple[int, list[int], str]], args: dict[str, Any], report: Any) -> None:
    """One process of simulated nodes: one connection per node, which claims its chunk
    with the chunk's ticket (all claims sent at once, as when a job is sent to idle
    nodes), then reports with the token the manager's answer gave."""
    from kombu import Consumer, Queue

    from renderhub.node.claims import Control
    from renderhub.node_events import EventSender, events_connection

    controls = {}
    for task, _frames, _ticket in chunks:
        connection = events_connection(args["broker"])
        connection.ensure_connection(max_retries=3)
        control = Control(connection, f"sim-{task}", "fleet")
        controls[task] = control
    # The answers are read as a node does, blocking (BRPOP), by one consumer per process
    # over its nodes' control queues.
    answers: dict[int, dict[str, Any]] = {}
    claim_seconds: list[float] = []
    sent_at: dict[str, tuple[int, float]] = {}

    def answered(body: Any, message: Any) -> None:
        for answer in body if isinstance(body, list) else [body]:
            if isinstance(answer, dict) and answer.get("claim") in sent_at:
                task, sent = sent_at.pop(answer["claim"])
                answers[task] = answer
                claim_seconds.append(time.monotonic() - sent)

    listener = events_connection(args["broker"])
    queues = [Queue(c.queue, no_declare=True) for c in controls.values()]
    with Consumer(listener.channel(), queues, callbacks=[answered], accept=["json"], no_ack=True):
        for task, _frames, ticket in chunks:
            ident = f"claim-{task}"
            sent_at[ident] = (task, time.monotonic())
            controls[task].send(
                {"kind": "claim", "id": ident, "task": task, "ticket": ticket,
                 "node": f"sim-{task}", "reply": controls[task].queue}
            )  # fmt: skip
        deadline = time.monotonic() + 600
        while sent_at and time.monotonic() < deadline:
            try:
                listener.drain_events(timeout=max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                break
    listener.release()
    senders = []
    for task, frames, _ticket in chunks:
        answer = answers.get(task, {})
        if answer.get("kind") != "chunk":
            continue
        sender = EventSender(controls[task].connection, f"sim-{task}")
        sender.authorize(task, answer["attempt"], answer["token"])
        senders.append((sender, controls[task].connection, task, list(frames)))
    start = time.monotonic()
    end = start + args["seconds"]
    ticks = {"progress": start, "frame": start, "heartbeat": start, "flush": start}
    counts = {"frames_done": 0}
    current: list[int | None] = [None for _ in senders]
    while (now := time.monotonic()) < end:
        if now >= ticks["frame"]:
            ticks["frame"] += FRAME_EVERY
            for i, (sender, _, task, frames) in enumerate(senders):
                if current[i] is not None:
                    sender.event(
                        task, 1, "frame_done", frame=current[i], seconds=FRAME_EVERY, output="png"
                    )
                    counts["frames_done"] += 1
                current[i] = frames.pop(0) if frames else None
                if current[i] is not None:
                    sender.event(task, 1, "frame_started", frame=current[i])
        if now >= ticks["progress"]:
            ticks["progress"] += PROGRESS_EVERY
            for i, (sender, _, task, _frames) in enumerate(senders):
                if current[i] is not None:
                    sender.event(task, 1, "progress", frame=current[i], percent=50.0)
        if now >= ticks["heartbeat"]:
            ticks["heartbeat"] += HEARTBEAT_EVERY
            for sender, _, task, _frames in senders:
                sender.event(task, 1, "heartbeat", cpu=97.0)
        if now >= ticks["flush"]:
            ticks["flush"] += args["flush"]
            for sender, *_ in senders:
                sender.flush()
        time.sleep(max(0.0, min(ticks.values()) - time.monotonic()))
    for sender, connection, *_ in senders:
        sender.flush()
        connection.release()
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime
    report.put(
        {
            "sent": sum(s.sent for s, *_ in senders),
            "cpu_seconds": cpu,
            "claims": len(chunks),
            "claimed": len(senders),
            "claim_seconds": claim_seconds,
            **counts,
        }
    )


# --- the manager --------------------------------------------------------------------------


def run_manager(database_url: str, broker: str, stats_path: str) -> None:
    """The drain in a process of its own; writes its figures when told to stop (SIGTERM)."""
    django_setup(database_url, broker)
    import resource

    from jobs.event_drain import drain
    from renderhub.node_events import events_connection

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    latencies: list[float] = []
    transits: list[float] = []
    totals = {"events": 0, "stale": 0, "invalid": 0, "forged": 0, "frames_done": 0, "batches": 0}

    def on_batch(applied: Any, messages: int) -> None:
        latencies.extend(applied.latencies)
        transits.extend(applied.transits)
        totals["events"] += applied.events
        totals["stale"] += applied.stale
        totals["invalid"] += applied.invalid
        totals["forged"] += applied.forged
        totals["frames_done"] += applied.frames_done
        totals["batches"] += 1

    started = time.monotonic()
    with events_connection(broker) as connection:
        drain(connection, stop, on_batch=on_batch)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    Path(stats_path).write_text(
        json.dumps(
            {
                **totals,
                "latencies": latencies,
                "transits": transits,
                "cpu_seconds": usage.ru_utime + usage.ru_stime,
                "wall_seconds": time.monotonic() - started,
            }
        )
    )


# --- one round ----------------------------------------------------------------------------


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def _p95(ordered: list[float]) -> float | None:
    return round(ordered[int(0.95 * (len(ordered) - 1))], 3) if ordered else None


def one_round(n: int, args: argparse.Namespace) -> dict[str, Any]:
    import redis
    from django.db import connection

    frames = int(args.seconds / FRAME_EVERY) + 2
    task_ids = make_job(n, frames, args.node_facts)
    from jobs.event_tokens import claim_ticket
    from jobs.models import Task

    rows = dict(Task.objects.filter(pk__in=task_ids).values_list("pk", "frames"))
    tokens = {pk: claim_ticket(pk) for pk in task_ids}  # what each chunk's message carries
    broker = redis.Redis.from_url(args.broker)
    broker.flushdb()
    stats = Path(tempfile.mkstemp(prefix="fleet-manager-", suffix=".json")[1])
    context = multiprocessing.get_context("spawn")
    manager = context.Process(target=run_manager, args=(args.database_url, args.broker, str(stats)))
    manager.start()
    time.sleep(3.0)  # the manager's Django is up and its consumer listening
    report = context.Queue()
    slices = [task_ids[i :: args.procs] for i in range(args.procs)]
    node_args = {"broker": args.broker, "seconds": args.seconds, "flush": args.flush}
    nodes = [
        context.Process(
            target=run_nodes, args=([(t, rows[t], tokens[t]) for t in part], node_args, report)
        )
        for part in slices
        if part
    ]
    redis_cpu = broker.info("cpu")
    for process in nodes:
        process.start()
    db_name = urlsplit(args.database_url).path.lstrip("/")
    connections_seen, memory_seen = 0, 0
    with connection.cursor() as cursor:
        while any(p.is_alive() for p in nodes):
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> "
                "pg_backend_pid()",
                [db_name],
            )
            connections_seen = max(connections_seen, cursor.fetchone()[0])
            memory_seen = max(memory_seen, int(broker.info("memory")["used_memory"]))
            time.sleep(0.5)
    nodes_stopped = time.monotonic()
    sent = [report.get(timeout=30) for _ in nodes]
    redis_after = broker.info("cpu")
    redis_seconds = sum(redis_after[k] - redis_cpu[k] for k in ("used_cpu_sys", "used_cpu_user"))
    for process in nodes:
        process.join()
    total_sent = sum(r["sent"] for r in sent)
    claim_times = sorted(t for r in sent for t in r["claim_seconds"])
    reported_done = sum(r["frames_done"] for r in sent)
    from jobs.event_drain import taken_keys
    from jobs.models import RenderJob
    from renderhub.node_events import REDIS_OPTIONS

    prefix = str(REDIS_OPTIONS["global_keyprefix"])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # until the queue is empty and nothing is unacked
        keys = taken_keys()  # the queue, and the batch the drain is applying
        if not sum(map(broker.llen, keys)) and not broker.hlen(prefix + "unacked"):
            break
        time.sleep(0.2)
    drained_after = time.monotonic()
    job = RenderJob.objects.get(tasks__pk=task_ids[0])
    manager.terminate()
    manager.join(timeout=30)
    figures: dict[str, Any] = json.loads(stats.read_text())
    stats.unlink()
    latencies = sorted(figures.pop("latencies"))
    transits = sorted(figures.pop("transits"))
    applied = figures["events"] + figures["stale"] + figures["invalid"] + figures["forged"]
    return {
        "nodes": n,
        "node_facts": args.node_facts,
        "seconds": args.seconds,
        "claims": sum(r["claims"] for r in sent),
        "claims_granted": sum(r["claimed"] for r in sent),
        "claim_median_s": _median(claim_times),
        "claim_p95_s": _p95(claim_times),
        "all_claimed_s": round(claim_times[-1], 2) if claim_times else None,
        "events_sent": total_sent,
        "events_applied": applied,
        "lost_events": max(0, total_sent - applied),
        "duplicated_events": max(0, applied - total_sent),
        "events_refused": figures["forged"] + figures["invalid"],  # no token, not an event
        "frames_reported_done": reported_done,
        "frames_done_in_db": job.frames_done,
        "latency_median_s": _median(latencies),
        "latency_p95_s": _p95(latencies),
        "publish_to_row_median_s": _median(transits),
        "publish_to_row_p95_s": _p95(transits),
        "db_connections_max": connections_seen,
        "manager_cpu_percent": round(
            100 * figures["cpu_seconds"] / max(figures["wall_seconds"], 1e-9), 1
        ),
        "broker_memory_max_mb": round(memory_seen / 2**20, 1),
        # Where the machine's two cores went while the nodes ran (percent of one core).
        "nodes_cpu_percent": round(100 * sum(r["cpu_seconds"] for r in sent) / args.seconds, 1),
        "broker_cpu_percent": round(100 * redis_seconds / args.seconds, 1),
        "batches": figures["batches"],
        "backlog_seconds_after_nodes_stopped": round(drained_after - nodes_stopped, 2),
    }


def main() -> None:
    args = parse_args()
    ensure_database(args.database_url)
    django_setup(args.database_url, args.broker)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    results = []
    for n in (int(x) for x in args.nodes.split(",")):
        result = one_round(n, args)
        results.append(result)
        print(json.dumps(result), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = args.out / f"fleet-{stamp}.json"
    path.write_text(json.dumps(results, indent=1))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
