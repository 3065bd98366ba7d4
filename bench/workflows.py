"""Workflow benchmark: the germline demo through RenderHub versus ``miniwdl run`` directly.

Both run the same WDL with the same inputs on this machine, in one process run, taking
turns: RenderHub from ``workflows.services.submit`` until the run's row says it ended (a
real Celery worker picks it up from the filesystem broker, stages it, runs ``miniwdl run``
with the host-process backend, reads the run directory every second, copies outputs and
logs into storage); directly, ``python -m WDL run`` with the same backend and no call
cache, timed as a subprocess. The call cache is off on both sides. Ratio = RenderHub
time / miniwdl time (median of the rounds); the target is ≤ 1.10.

Usage: ``python bench/workflows.py [--rounds 3] [--reference-length 200000]
[--read-pairs 100000]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reference-length", type=int, default=200_000)
    parser.add_argument("--read-pairs", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    return parser.parse_args()


def load() -> float:
    return os.getloadavg()[0]


def main() -> int:
    args = parse_args()
    var = Path(tempfile.mkdtemp(prefix="renderhub-bench-wf-"))
    os.environ["RENDERHUB_VAR_DIR"] = str(var)
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "WORKFLOW_WORK_DIR"):
        os.environ.pop(name, None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "renderhub.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from ops import demo
    from workflows import demos

    project, _software, _cluster = demo.ensure_records()
    wdl = demos.GERMLINE_WDL.read_text()
    inputs = {
        **demos.GERMLINE_INPUTS,
        "germline.reference_length": args.reference_length,
        "germline.read_pairs": args.read_pairs,
    }
    results: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "reference_length": args.reference_length,
        "read_pairs_per_sample": args.read_pairs,
        "samples": len(inputs["germline.samples"]),
        "load_before": round(load(), 2),
    }
    worker = start_worker(var)
    try:
        wait_for_worker(project, wdl)  # also warms up the worker and the page cache
        direct_times, renderhub_times = [], []
        parts: dict[str, list[float]] = {
            "before_first_task": [],
            "after_last_task": [],
            "direct_before_first_task": [],
        }
        for _ in range(args.rounds):
            direct_times.append(run_directly(var, wdl, inputs, parts))
            renderhub_times.append(run_through_renderhub(project, wdl, inputs, parts))
    finally:
        worker.terminate()
        worker.wait(30)
    direct, renderhub = statistics.median(direct_times), statistics.median(renderhub_times)
    results.update(
        load_after=round(load(), 2),
        miniwdl_seconds=[round(t, 2) for t in direct_times],
        renderhub_seconds=[round(t, 2) for t in renderhub_times],
        miniwdl_median=round(direct, 2),
        renderhub_median=round(renderhub, 2),
        ratio=round(renderhub / direct, 3),
        renderhub_before_first_task=[round(t, 2) for t in parts["before_first_task"]],
        renderhub_after_last_task=[round(t, 2) for t in parts["after_last_task"]],
        miniwdl_before_first_task=[round(t, 2) for t in parts["direct_before_first_task"]],
    )
    print(json.dumps(results, indent=2))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"workflows-{datetime.now():%Y%m%d-%H%M%S}.json").write_text(
        json.dumps(results, indent=2)
    )
    if not os.environ.get("BENCH_KEEP"):
        shutil.rmtree(var, ignore_errors=True)
    return 0


def start_worker(var: Path) -> subprocess.Popen[bytes]:
    log = open(var / "worker.log", "ab")  # noqa: SIM115 (lives as long as the worker)
    celery = Path(sys.executable).parent / "celery"
    argv = [str(celery), "-A", "renderhub", "worker", "-Q", "renderhub", "-c", "1"]
    argv += ["-n", "bench-wf@%h", "-l", os.environ.get("BENCH_WORKER_LOG_LEVEL", "warning")]
    return subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


def submit_and_wait(project: Any, wdl: str, inputs: dict[str, Any], timeout: float = 900) -> Any:
    from workflows import services
    from workflows.choices import RunState

    options = {"read_from_cache": False, "write_to_cache": False}
    run = services.submit(
        services.WorkflowRequest(project=project, wdl_source=wdl, inputs=inputs, options=options)
    )
    deadline = time.monotonic() + timeout
    while run.is_active:
        if time.monotonic() > deadline:
            raise SystemExit(f"workflow run {run.pk} did not end")
        time.sleep(0.05)
        run.refresh_from_db()
    if run.state != RunState.SUCCEEDED:
        raise SystemExit(f"workflow run {run.pk} {run.state}: {run.failure_message}")
    return run


def wait_for_worker(project: Any, wdl: str) -> None:
    small = {"germline.reference_length": 5000, "germline.read_pairs": 500}
    submit_and_wait(project, wdl, small, timeout=120)


def run_through_renderhub(
    project: Any, wdl: str, inputs: dict[str, Any], parts: dict[str, list[float]]
) -> float:
    start = time.monotonic()
    run = submit_and_wait(project, wdl, inputs)
    total = time.monotonic() - start
    # Where RenderHub's own time goes: before the first task starts (broker, claim,
    # staging, miniwdl's start) and after the last one ends (outputs and logs copied).
    calls = list(run.calls.all())
    first = min(c.started_at for c in calls if c.started_at)
    last = max(c.finished_at for c in calls if c.finished_at)
    parts["before_first_task"].append((first - run.created_at).total_seconds())
    parts["after_last_task"].append((run.finished_at - last).total_seconds())
    return total


def run_directly(
    var: Path, wdl: str, inputs: dict[str, Any], parts: dict[str, list[float]]
) -> float:
    from workflows.engines.miniwdl import BACKEND, PLUGIN_DIR

    folder = Path(tempfile.mkdtemp(prefix="direct-", dir=var))
    (folder / "germline.wdl").write_text(wdl)
    (folder / "inputs.json").write_text(json.dumps(inputs))
    (folder / "miniwdl.cfg").write_text(
        f"[scheduler]\ncontainer_backend = {BACKEND}\n[call_cache]\nget = false\nput = false\n"
    )
    env = {**os.environ, "PYTHONPATH": str(PLUGIN_DIR), "NO_COLOR": "1"}
    argv = [sys.executable, "-m", "WDL", "run", str(folder / "germline.wdl")]
    argv += ["-i", str(folder / "inputs.json"), "--dir", f"{folder}/run/."]
    argv += ["--cfg", str(folder / "miniwdl.cfg"), "-o", str(folder / "result.json")]
    argv.append("--log-json")  # as RenderHub runs it
    started = time.time()
    start = time.monotonic()
    subprocess.run(argv, cwd=folder, env=env, check=True, capture_output=True)
    total = time.monotonic() - start
    first = min(
        json.loads(line)["timestamp"]
        for log in (folder / "run").glob("call-*/task.log.json")
        for line in log.read_text().splitlines()
        if '"host process"' in line
    )
    parts["direct_before_first_task"].append(first - started)
    return total


if __name__ == "__main__":
    sys.exit(main())
