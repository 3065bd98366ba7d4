"""Render benchmarks, run in one process against a scratch RenderHub (own var dir).

1. Farm efficiency: the 48-frame demo scene through RenderHub (two chunks on a local
   render worker with concurrency 2) against plain ``blender -b scene -a`` on the same
   scene, in the same run. Ratio = RenderHub wall time / Blender wall time. With
   ``--sandbox both`` the RenderHub side runs with the renderers in the bubblewrap sandbox
   and without it, alternately (``--repeat`` times each, a worker restarted per setting),
   so the sandbox's cost is measured against the same baseline.
2. Dispatch latency: submit to renderer start (the agent's ``started`` event), for
   single-frame jobs submitted one after another; median and max.
3. With ``--scenes short,long,uneven``: farm efficiency of the default distribution on
   scenes built in code, and adaptive chunks' makespan against the ideal
   (``bench/render_scenes.py``).

4. With ``--path node``: all of it through render nodes without keys (``bench/node_path.py``:
   the manager's site, its event drain and a node process), instead of a render worker
   that reads the database (``--path worker``, the default).

Usage: ``python bench/render.py [--broker redis://127.0.0.1:6379/14] [--latency-jobs 15]
[--path worker|node] [--database-url postgres://…]
[--sandbox bwrap|none|both] [--repeat 3] [--scenes short,long,uneven [--scene-frames 24]
[--chunk-seconds 120,10] [--samples-scale 1]]``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--broker", default="", help="CELERY_BROKER_URL (default: filesystem)")
    parser.add_argument("--path", choices=["worker", "node"], default="worker")
    parser.add_argument("--database-url", default="", help="DATABASE_URL (default: SQLite)")
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--latency-jobs", type=int, default=15)
    parser.add_argument("--skip-efficiency", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--sandbox", choices=["bwrap", "none", "both"], default="bwrap")
    parser.add_argument("--repeat", type=int, default=1, help="efficiency runs per sandbox")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument("--scenes", default="", help="e.g. short,long,uneven (render_scenes)")
    parser.add_argument("--scene-frames", type=int, default=24)
    parser.add_argument(
        "--chunk-seconds",
        type=lambda text: [int(x) for x in text.split(",")],
        default=[120, 10],
        help="the adaptive jobs', e.g. 120,10 (one job each)",
    )
    parser.add_argument(
        "--samples-scale", type=float, default=1.0, help="scale the scenes' samples (a quick try)"
    )
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    var = Path(tempfile.mkdtemp(prefix="renderhub-bench-"))
    os.environ["RENDERHUB_VAR_DIR"] = str(var)
    if args.database_url:
        fresh_database(args.database_url)
        os.environ["DATABASE_URL"] = args.database_url
    else:
        os.environ.pop("DATABASE_URL", None)
    if args.broker:
        os.environ["CELERY_BROKER_URL"] = args.broker
    else:
        os.environ.pop("CELERY_BROKER_URL", None)
    # The no-op renderer of the latency test is this Python: sandboxed renderers may run it.
    os.environ["RENDER_SANDBOX_PATHS"] = ",".join(sorted({sys.prefix, sys.base_prefix}))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "renderhub.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from ops import demo

    project, software, cluster = demo.ensure_records()
    scene_url = demo.ensure_scene(frames=args.frames)
    if args.broker:
        from renderhub.celery import app

        app.control.purge()
    kinds = ["bwrap", "none"] if args.sandbox == "both" else [args.sandbox]
    SETUP["path"] = args.path
    results: dict[str, object] = {
        "path": args.path,
        "broker": args.broker.split("://")[0] if args.broker else "filesystem",
        "cpus": os.cpu_count(),
        "blender": blender_version(),
        "sandbox": args.sandbox,
    }
    if not args.skip_efficiency:
        results["efficiency"] = farm_efficiency(
            project, software, cluster, scene_url, var, kinds, args.repeat
        )
        print(json.dumps(results["efficiency"], indent=2), flush=True)  # kept if a later step fails
    if not args.skip_latency:
        with running_worker(var, cluster.pk, kinds[0]):
            results["latency"] = dispatch_latency(project, cluster, scene_url, args.latency_jobs)
    if args.scenes:
        results["scenes"] = scenes_efficiency(project, software, cluster, var, kinds[0], args)
    if args.path == "node":
        from node_path import CPU_SECONDS

        results["path_cpu_seconds"] = CPU_SECONDS
    print(json.dumps(results, indent=2))
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"render-{args.path}-{results['broker']}-{datetime.now():%Y%m%d-%H%M%S}.json"
    (args.out / name).write_text(json.dumps(results, indent=2))
    if not os.environ.get("BENCH_KEEP"):
        shutil.rmtree(var, ignore_errors=True)
    return 0


SETUP = {"path": "worker"}  # --path


def fresh_database(url: str) -> None:
    """An empty PostgreSQL database for this run (its records point into this run's var)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    where = ["-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 5432)]
    where += ["-U", parts.username or "postgres"]
    name = parts.path.lstrip("/")
    subprocess.run(["dropdb", *where, "--if-exists", name], check=True, capture_output=True)
    subprocess.run(["createdb", *where, name], check=True, capture_output=True)


@contextlib.contextmanager
def running_worker(var: Path, cluster_id: int, sandbox: str) -> Iterator[None]:
    """A render worker (concurrency 2) with RENDER_SANDBOX=sandbox, up until the block ends;
    with --path node, a render node without keys and the manager's side of its path."""
    if SETUP["path"] == "node":
        from node_path import running_node

        with running_node(var, cluster_id, sandbox):
            yield
        return
    log = open(var / "worker.log", "ab")  # noqa: SIM115 (lives as long as the worker)
    celery = Path(sys.executable).parent / "celery"
    argv = [str(celery), "-A", "renderhub", "worker", "-Q", "renderhub,render.local"]
    argv += ["-c", "2", "-n", "bench@%h", "-l", os.environ.get("BENCH_WORKER_LOG_LEVEL", "warning")]
    env = {**os.environ, "RENDER_SANDBOX": sandbox}
    started = time.time()
    worker = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        wait_for_node(cluster_id, started)
        yield
    finally:
        worker.terminate()
        worker.wait(30)
        log.close()


def wait_for_node(cluster_id: int, since: float) -> None:
    from datetime import UTC

    from clusters.models import ClusterNode

    seen_after = datetime.fromtimestamp(since, UTC)
    deadline = time.monotonic() + 60
    nodes = ClusterNode.objects.filter(
        cluster_id=cluster_id, name__startswith="bench@", last_seen__gte=seen_after
    )
    while not nodes.exists():
        if time.monotonic() > deadline:
            raise SystemExit("the render worker did not start")
        time.sleep(0.2)


def blender_version() -> str:
    out = subprocess.run(["blender", "--version"], capture_output=True, text=True, check=False)
    return out.stdout.splitlines()[0] if out.stdout else "unknown"


def submit(project, software, cluster, scene_url, frames: str, nodes: int):  # type: ignore[no-untyped-def]
    from jobs import services

    [job] = services.submit_render(
        services.RenderRequest(
            project=project,
            software=software,
            cluster=cluster,
            scenes=[scene_url],
            frames=frames,
            nodes=nodes,
        )
    )
    return job


def wait(job, timeout: float = 900):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while job.is_active:
        if time.monotonic() > deadline:
            raise SystemExit(f"job {job.pk} did not finish")
        time.sleep(0.05)
        job.refresh_from_db()
    if job.state != "finished":
        raise SystemExit(f"job {job.pk} {job.state}: {job.failure_reason}")
    return job


def farm_efficiency(  # type: ignore[no-untyped-def]
    project, software, cluster, scene_url, var: Path, kinds: list[str], repeat: int
) -> dict[str, object]:
    from renderhub import storage

    backend, key = storage.resolve(scene_url)
    scene = backend.local_path(key)
    out = var / "baseline"
    start = time.monotonic()
    subprocess.run(
        ["blender", "-b", str(scene), "-o", str(out / "frame_####"), "-F", "PNG", "-a"],
        check=True,
        capture_output=True,
    )
    baseline = time.monotonic() - start
    frames = count_frames(out)
    seconds: dict[str, list[float]] = {kind: [] for kind in kinds}
    for run in range(repeat):
        # Alternately, first one then the other first: drift and warm-up hit both alike.
        for kind in kinds if run % 2 == 0 else kinds[::-1]:
            with running_worker(var, cluster.pk, kind):
                start = time.monotonic()
                wait(submit(project, software, cluster, scene_url, f"1-{frames}", nodes=2))
                seconds[kind].append(round(time.monotonic() - start, 2))
    result: dict[str, object] = {"frames": frames, "blender_seconds": round(baseline, 2)}
    for kind, runs in seconds.items():
        median = statistics.median(runs)
        result[kind] = {
            "renderhub_seconds": runs,
            "median_seconds": round(median, 2),
            "ratio": round(median / baseline, 3),
        }
    if len(kinds) == 2:
        cost = statistics.median(seconds["bwrap"]) / statistics.median(seconds["none"]) - 1
        result["sandbox_cost_percent"] = round(100 * cost, 1)
    return result


def scenes_efficiency(  # type: ignore[no-untyped-def]
    project, software, cluster, var: Path, sandbox: str, args: argparse.Namespace
) -> dict[str, object]:
    import render_scenes

    def submit_scene(project, software, cluster, scene_url, frames, chunk_seconds=None):  # type: ignore[no-untyped-def]
        from jobs import services

        request = services.RenderRequest(
            project=project, software=software, cluster=cluster, scenes=[scene_url],
            frames=frames, chunk_seconds=chunk_seconds,
        )  # fmt: skip
        return services.submit_render(request)[0]

    results: dict[str, object] = {}
    with running_worker(var, cluster.pk, sandbox):
        for kind in args.scenes.split(","):
            results[kind] = render_scenes.run_scene(
                kind, project, software, cluster, var, args, submit_scene, wait
            )
            print(json.dumps({kind: results[kind]}, indent=2), flush=True)
    return results


def count_frames(folder: Path) -> int:
    return len(list(folder.glob("frame_*.png")))


def dispatch_latency(project, cluster, scene_url, jobs: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Submit to renderer start, using a renderer that writes its frame and exits at once."""
    from images.models import Software
    from renderhub import storage

    quick, _ = Software.objects.get_or_create(
        image=project.image,
        name="bench-noop",
        defaults={
            "scene_suffixes": ".blend",
            "command_template": [
                sys.executable,
                "-c",
                NOOP_RENDERER,
                "{output_pattern}",
                "{start}",
            ],
            "progress_parser": "none",
        },
    )
    samples, claims, returned = [], [], []
    for _ in range(jobs):
        submitted = time.time()
        job = submit(project, quick, cluster, scene_url, "1", nodes=1)
        returned.append(time.time() - submitted)
        job = job.__class__.objects.get(pk=job.pk)
        while job.is_active:
            time.sleep(0.05)
            job.refresh_from_db()
        if job.state != "finished":
            raise SystemExit(f"latency job {job.pk} {job.state}: {job.failure_reason}")
        task = job.tasks.get()
        backend, key = storage.resolve(task.log_url + "agent.log")
        started = agent_started_at(backend.read(key).decode())
        samples.append(started - submitted)
        claims.append(task.started_at.timestamp() - submitted)
    return {
        "jobs": jobs,
        "median_submit_call_seconds": round(statistics.median(returned), 3),
        "median_to_claim_seconds": round(statistics.median(claims), 3),
        "median_seconds": round(statistics.median(samples), 3),
        "max_seconds": round(max(samples), 3),
        "min_seconds": round(min(samples), 3),
    }


NOOP_RENDERER = (  # writes a real 1x1 PNG: a frame must be an image file that decodes
    "import pathlib, struct, sys, zlib\n"
    "def chunk(kind, body):\n"
    "    return struct.pack('>I', len(body)) + kind + body"
    " + struct.pack('>I', zlib.crc32(kind + body))\n"
    "png = b'\\x89PNG\\r\\n\\x1a\\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', 1, 1, 8, 2, 0, 0, 0))"
    " + chunk(b'IDAT', zlib.compress(b'\\x00\\x10\\x20\\x30')) + chunk(b'IEND', b'')\n"
    "out = sys.argv[1].replace('####', '%04d' % int(sys.argv[2])) + '.png'\n"
    "pathlib.Path(out).write_bytes(png)\n"
)


def agent_started_at(log: str) -> float:
    for line in log.splitlines():
        if " started pid=" in line:
            stamp = " ".join(line.split()[:2])
            return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").astimezone().timestamp()
    raise SystemExit("no started event in the agent log")


if __name__ == "__main__":
    sys.exit(main())
