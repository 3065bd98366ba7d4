"""BatchCompute poll cycle cost: API calls, wall time and manager CPU per cycle.

100 active jobs of 10 instances and one job of 1,000 instances run on a standing cluster of
the fake BatchCompute (tests/fakes/batchcompute.py, with the fake OSS). The fakes run in a
child process, so ``time.process_time()`` here is the manager's CPU only: the real SDK
and oss2 calls, the event parsing and the database (SQLite in a scratch var dir).

Cycles measured: *cold* (every instance newly running, one event file each to read), the
cycles *catching up* with the big job (its listing pass and its events backlog take turns,
50 files per job and cycle), *steady* (nothing changed), *progress* (every running
instance wrote one more frame event) and *finishing* (10 % of the instances ended).

Usage: ``python bench/batchcompute_poll.py [--jobs 100] [--instances 10] [--big 1000]``
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--instances", type=int, default=10)
    parser.add_argument("--big", type=int, default=1000, help="instances of the big job")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    return parser.parse_args()


# --- the fakes, in a child process --------------------------------------------------------


def serve(conn: Any) -> None:
    from tests.fakes import oss as fake_oss
    from tests.fakes.batchcompute import FakeBatchCompute
    from tests.fakes.oss import FakeOSS

    # Replies go out in two writes; without TCP_NODELAY each waits for a delayed ACK (40 ms),
    # which would time the fake's socket, not RenderHub.
    fake_oss._Handler.disable_nagle_algorithm = True
    oss = FakeOSS().start()
    oss.create_bucket("renders")
    fake = FakeBatchCompute(oss=oss).start()
    keys = {
        "BATCHCOMPUTE_ACCESS_KEY_ID": fake.access_key_id,
        "BATCHCOMPUTE_ACCESS_KEY_SECRET": fake.access_key_secret,
        "OSS_ACCESS_KEY_ID": oss.access_key_id,
        "OSS_ACCESS_KEY_SECRET": oss.access_key_secret,
    }
    conn.send((oss.endpoint, fake.endpoint, fake.region, keys))
    while True:
        command, args = conn.recv()
        if command == "stop":
            break
        if command == "counts":
            conn.send((Counter(r.route for r in fake.requests), len(oss.requests)))
        elif command == "tick":
            fake.tick()
            conn.send(None)
        elif command == "start_all":
            for job_id in list(fake.jobs):
                fake.start_instances(job_id)
            conn.send(None)
        elif command == "events":  # [(log prefix key, instance, frame)]
            for key_prefix, instance, frame in args:
                key = f"{key_prefix}events/{instance}.1.jsonl"
                old = oss.get("renders", key)
                line = json.dumps(
                    {"event": "frame_done", "frame": frame, "outputs": [], "seconds": 1.0}
                )
                oss.put("renders", key, (old.data if old else b"") + line.encode() + b"\n")
            conn.send(None)
        elif command == "finish":  # [(job id, instance)]
            for job_id, instance in args:
                fake.finish_instance(job_id, instance)
            conn.send(None)
    fake.stop()
    oss.stop()


class Fakes:
    def __init__(self) -> None:
        parent, child = multiprocessing.get_context("fork").Pipe()
        self.conn = parent
        self.process = multiprocessing.get_context("fork").Process(target=serve, args=(child,))
        self.process.start()
        self.oss_endpoint, self.bc_endpoint, self.region, self.keys = parent.recv()

    def call(self, command: str, *args: Any) -> Any:
        self.conn.send((command, args))
        return self.conn.recv()

    def stop(self) -> None:
        self.conn.send(("stop", ()))
        self.process.join(10)


# --- the manager --------------------------------------------------------------------------


def setup_django(fakes: Fakes, max_nodes: int) -> None:
    var = Path(tempfile.mkdtemp(prefix="renderhub-bench-bc-"))
    os.environ.update(
        RENDERHUB_VAR_DIR=str(var),
        BATCHCOMPUTE_REGION=fakes.region,
        BATCHCOMPUTE_ENDPOINT=fakes.bc_endpoint,
        OSS_ENDPOINT=fakes.oss_endpoint,
        **fakes.keys,
        RENDER_MAX_NODES_PER_JOB=str(max_nodes),
        BATCHCOMPUTE_MAX_INSTANCES=str(max_nodes),
        LOG_LEVEL="WARNING",
    )
    for name in ("DATABASE_URL", "CELERY_BROKER_URL"):
        os.environ.pop(name, None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "renderhub.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def create_jobs(args: argparse.Namespace) -> tuple[list[Any], float]:
    from clusters import services as cluster_services
    from clusters.models import Cluster
    from images.models import ComputeImage, Software
    from jobs import services
    from projects.models import Project, StorageMapping

    image = ComputeImage.objects.create(name="cloud", image_id="img-blender")
    software = Software.objects.create(
        image=image, name="blender", command_template=["blender", "-b", "{scene}"]
    )
    project = Project.objects.create(
        name="bench", image=image, output_prefix="oss://renders/output/"
    )
    StorageMapping.objects.create(
        project=project, source="oss://renders/scenes/", destination="/mnt/scenes/"
    )
    from renderhub import storage

    backend, _ = storage.resolve("oss://renders/")
    backend.write("scenes/shot.blend", b"scene")
    cluster = cluster_services.create(
        Cluster(
            name="farm",
            backend="batchcompute",
            image=image,
            instance_type="bcs.a2.large",
            desired_nodes=50,
            max_nodes=max(args.big, args.instances),
        )
    )
    started = time.perf_counter()
    jobs = []
    for count in [args.instances] * args.jobs + [args.big]:
        request = services.RenderRequest(
            project=project,
            software=software,
            cluster=cluster,
            scenes=["oss://renders/scenes/shot.blend"],
            frames=f"1-{count * 2}",
            nodes=count,
        )
        jobs += services.submit_render(request)  # dispatched on commit: one cloud job each
    return jobs, time.perf_counter() - started


def measure(fakes: Fakes, label: str, active: int) -> dict[str, Any]:
    from jobs.backends.batchcompute import poll as cloud_poll

    before_bc, before_oss = fakes.call("counts")
    wall, cpu = time.perf_counter(), time.process_time()
    report = cloud_poll.poll_all()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    after_bc, after_oss = fakes.call("counts")
    calls = after_bc - before_bc
    row = {
        "cycle": label,
        "jobs polled": report.polled,
        "BatchCompute calls": sum(calls.values()),
        "get_job": calls["GET /jobs/{id}"],
        "list_instances": calls["GET /jobs/{id}/tasks/{task}/instances"],
        "OSS requests": after_oss - before_oss,
        "calls per job": round(sum(calls.values()) / max(1, active), 2),
        "wall s": round(wall, 3),
        "manager CPU s": round(cpu, 3),
    }
    print(" | ".join(f"{k}: {v}" for k, v in row.items()), flush=True)
    return row


def main() -> int:
    args = parse_args()
    fakes = Fakes()
    try:
        setup_django(fakes, max(args.big, args.instances))
        fakes.call("tick")
        fakes.call("tick")
        from jobs.models import CloudJob, Task

        jobs, submit_seconds = create_jobs(args)
        print(f"submitted {len(jobs)} jobs in {submit_seconds:.1f} s", flush=True)
        cloud_jobs = list(CloudJob.objects.order_by("pk"))
        active = len(cloud_jobs)
        fakes.call("start_all")
        prefixes = {cj.pk: cj.log_url.removeprefix("oss://renders/") for cj in cloud_jobs}

        def events(frame_of: Any) -> None:
            rows = [
                (prefixes[t.cloud_job_id], t.cloud_instance, frame_of(t))
                for t in Task.objects.filter(state__in=("queued", "running"))
            ]
            fakes.call("events", *rows)

        events(lambda t: t.frames[0])
        rows = [measure(fakes, "cold", active)]
        # The big job's first listing pass and its event backlog take several cycles.
        for i in range(1, 31):
            rows.append(measure(fakes, f"catching up {i}", active))
            if rows[-1]["OSS requests"] <= active + 1 and not rows[-1]["list_instances"]:
                break
        for _ in range(3):
            rows.append(measure(fakes, "steady", active))
        events(lambda t: t.frames[-1])
        rows.append(measure(fakes, "progress", active))
        ending = [
            (cj.cloud_id, i) for cj in cloud_jobs for i in range(cj.instance_count) if i % 10 == 0
        ]
        fakes.call("finish", *ending)
        rows.append(measure(fakes, "finishing", active))
        rows.append(measure(fakes, "steady", active))
    finally:
        fakes.stop()
    result = {
        "date": datetime.now().isoformat(timespec="seconds"),
        "jobs": args.jobs,
        "instances": args.instances,
        "big": args.big,
        "submit_seconds": round(submit_seconds, 2),
        "cycles": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"batchcompute-poll-{datetime.now():%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps(result, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
