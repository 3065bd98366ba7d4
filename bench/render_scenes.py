"""Farm efficiency on scenes RenderHub never saw, and adaptive chunks against the ideal
(``bench/render.py --scenes short,long,uneven``; issue 16).

Per scene, built in code by ``bench/bench_scene.py`` (short frames, long frames, frames
whose cost grows tenfold across the range), in one run:

1. ``blender -b scene -o … -F PNG -a``: the baseline, all cores, one process, run again
   beside each RenderHub run (before it, or after it every other round: the machine's
   speed drifts, so each ratio is within its round); between them the same frames dealt
   over two Blender processes side by side (every other frame each, RenderHub's renderer
   threads, nothing else: ``split``), what any farm of this machine's two slots can
   reach at best;
2. RenderHub, as a new user submits it: the default distribution (no nodes, no chunk
   size: the adaptive work queue, ``RENDER_CHUNK_SECONDS``), on a local render worker with
   two slots; timed from the submit call until the job row says finished. The first run
   knows the scene only through the software's earlier jobs (the run's first scene: not
   at all); later runs (``--repeat``) have its own frames measured;
3. RenderHub with each ``--chunk-seconds`` (the scene measured by then): its makespan (first
   chunk started to last chunk ended) against the ideal, the job's total render seconds
   (Blender's own per-frame times, each scaled to a full node's share: jobs.machine_share)
   divided by the slots, and what the slots spent over
   the render seconds: the chunks' start-ups and the slots' idle time (shares of them).

Ratio = RenderHub seconds / its pair's Blender seconds, median of the pairs (goal ≤ 1.00);
``split_ratio`` the same for the split baseline, and ``renderhub_over_split`` what
RenderHub costs over it (its scheduler, sandbox, checks and uploads);
makespan / ideal (goal ≤ 1.10 on the uneven scene). Each run of both also says how many
CPU-seconds the whole machine spent during it (``*_cpu_seconds``), and how many of them at
a raised nice value (``renderhub_nice_cpu_seconds``: RenderHub's idle-priority work, the
frames' checks, thumbnails and uploads): the same frames, rendered two ways, and what the
farm's own work costs beside them.

Plain Blender runs as a user's would: it writes no bytecode into its install (a user may
not; a bench run as root would, and speed every later run up). ``installed_bytecode``
says whether the install holds some anyway, ``renderhub_precompiled`` whether each
RenderHub run's renderers had this machine's compiled Python (``RENDER_BYTECODE_DIR``,
built in the background by the first Blender chunk of the run).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCENE_SCRIPT = ROOT / "bench" / "bench_scene.py"
SLOTS = 2
# Blender as a user runs it: one who may not write into the install compiles Blender's
# Python at every start; a bench run as root would write it there once, and every later
# plain run (and, from /usr, RenderHub's too) would start faster than a user's.
PLAIN_ENV = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
INSTALLED_BYTECODE = (
    "import bpy_types, importlib.util as u, os; "
    "print('INSTALLED', os.path.exists(u.cache_from_source(bpy_types.__file__)))"
)


def installed_bytecode() -> bool:
    """Whether Blender's install holds its modules compiled (then plain runs start as
    fast as RenderHub's renderers, which have theirs in RENDER_BYTECODE_DIR)."""
    argv = ["blender", "-b", "--factory-startup", "--python-expr", INSTALLED_BYTECODE]
    done = subprocess.run(argv, capture_output=True, text=True, env=PLAIN_ENV, check=False)
    return "INSTALLED True" in done.stdout


def build_scene(kind: str, frames: int, samples_scale: float) -> str:
    """Build the scene with Blender, store it in the demo project's scenes; its URL."""
    from ops.demo import storage_base
    from renderhub import storage

    backend, folder = storage.resolve(storage.join(storage_base(), f"demo/scenes/bench-{kind}/"))
    key = folder + f"{kind}.blend"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"{kind}.blend"
        argv = ["blender", "-b", "--factory-startup", "--python", str(SCENE_SCRIPT), "--"]
        argv += [str(out), "--kind", kind, "--frames", str(frames)]
        argv += ["--samples-scale", str(samples_scale)]
        subprocess.run(argv, check=True, capture_output=True, timeout=300, env=PLAIN_ENV)
        backend.upload_file(out, key)
    return backend.url_for(key)


def machine_cpu() -> tuple[float, float]:
    """CPU-seconds the machine has spent busy since boot, and of them at a raised nice."""
    import psutil

    times = psutil.cpu_times()
    busy = times.user + times.nice + times.system
    busy += getattr(times, "irq", 0.0) + getattr(times, "softirq", 0.0)
    return busy, times.nice


def cpu_since(mark: tuple[float, float]) -> tuple[float, float]:
    busy, nice = machine_cpu()
    return round(busy - mark[0], 2), round(nice - mark[1], 2)


def blender_all(scene_url: str, out: Path) -> tuple[float, float]:
    """``blender -a`` on the scene: its seconds and the machine's CPU-seconds meanwhile."""
    from renderhub import storage

    backend, key = storage.resolve(scene_url)
    start, cpu = time.monotonic(), machine_cpu()
    argv = ["blender", "-b", str(backend.local_path(key)), "-o", str(out / "frame_####")]
    subprocess.run([*argv, "-F", "PNG", "-a"], check=True, capture_output=True, env=PLAIN_ENV)
    return time.monotonic() - start, cpu_since(cpu)[0]


def blender_split(scene_url: str, out: Path, frames: int, threads: int) -> float:
    """The frames split over SLOTS Blender processes side by side, as a farm of this
    machine's slots would run them at best: every Nth frame each (even work for any cost
    curve), each with RenderHub's renderer threads, no scheduler, sandbox or checks. What
    RenderHub could reach on this machine; its seconds."""
    from renderhub import storage

    backend, key = storage.resolve(scene_url)
    argv = ["blender", "-b", str(backend.local_path(key)), "-F", "PNG", "-t", str(threads)]
    start = time.monotonic()
    for n in range(SLOTS):  # two Blenders making the same parents at once may both fail
        (out / f"slot{n}").mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        logs = [stack.enter_context(tempfile.TemporaryFile()) for _ in range(SLOTS)]
        procs = [
            subprocess.Popen(
                [*argv, "-o", str(out / f"slot{n}" / "frame_####"), "-f", ",".join(map(str, p))],
                stdout=logs[n],
                stderr=subprocess.STDOUT,
                env=PLAIN_ENV,
            )
            for n, p in enumerate(_dealt(frames, SLOTS))
        ]
        codes = [proc.wait() for proc in procs]  # all of them: none left loading later runs
        seconds = time.monotonic() - start
        shutil.rmtree(out, ignore_errors=True)
        if any(codes):
            for log in logs:
                log.seek(0)
            tails = [log.read().decode(errors="replace")[-1500:] for log in logs]
            raise RuntimeError(f"blender exited with {codes} in the split baseline:\n{tails}")
    return seconds


def _dealt(frames: int, hands: int) -> list[list[int]]:
    return [list(range(1 + n, frames + 1, hands)) for n in range(hands)]


def against_the_ideal(job: Any) -> dict[str, float | None]:
    """The job's makespan (first chunk started to last chunk ended) against the ideal (its
    frames' seconds on a full node, jobs.machine_share, over the slots: a frame rendered
    while the other slot idled had both cores, and its wall seconds would lower the ideal
    by the very idling it measures), and where the slots' seconds beyond the render seconds
    went, as shares of them: each chunk's start to its first frame (the renderer's
    start-up), and the slots idle (between chunks and while the last chunks end)."""
    attempts = [
        (task, begin, end)
        for task, begin, end in job.chunk_attempts.values_list(
            "task_id", "started_at", "finished_at"
        )
        if begin and end
    ]
    span = (max(e for _, _, e in attempts) - min(b for _, b, _ in attempts)).total_seconds()
    firsts: dict[int, Any] = {}
    for task, began in job.frame_set.values_list("task_id", "started_at"):
        if began and (task not in firsts or began < firsts[task]):
            firsts[task] = began
    startups = sum((firsts[t] - b).total_seconds() for t, b, _ in attempts if t in firsts)
    busy = sum((e - b).total_seconds() for _, b, e in attempts)
    from jobs.frame_costs import FULL_NODE_SECONDS  # Django is set up by then

    work = sum(job.frame_set.values_list(FULL_NODE_SECONDS, flat=True).exclude(seconds=None))
    ideal = work / SLOTS
    work = work or 1.0
    return {
        "makespan_seconds": round(span, 2),
        "ideal_seconds": round(ideal, 2),
        "makespan_over_ideal": round(span / ideal, 3) if ideal else None,
        "startups_share": round(startups / work, 3),
        "idle_share": round((SLOTS * span - busy) / work, 3),
    }


def phases(job: Any, called: float) -> dict[str, float]:
    """Where a run's seconds went: the submit call (scene checks) until the job row exists,
    then until the first chunk started on a node, until Blender's first frame began, the
    frames themselves (first began to last saved), and after the last frame until the job
    row said finished (checks of the outputs, uploads, the chunk's end)."""
    attempts = [s for s in job.chunk_attempts.values_list("started_at", flat=True) if s]
    frames = list(job.frame_set.values_list("started_at", "finished_at"))
    marks = [
        called,
        job.created_at.timestamp(),
        min(attempts).timestamp(),
        min(s for s, _ in frames if s).timestamp(),
        max(e for _, e in frames if e).timestamp(),
        job.finished_at.timestamp(),
    ]
    names = ["submit_call", "to_node", "to_first_frame", "frames", "after_last_frame"]
    return {n: round(b - a, 2) for n, a, b in zip(names, marks[:-1], marks[1:], strict=True)}


def frame_spread(job: Any) -> dict[str, float]:
    seconds = [s for s in job.frame_set.values_list("seconds", flat=True) if s]
    return {
        "frame_seconds_min": round(min(seconds), 2),
        "frame_seconds_max": round(max(seconds), 2),
    }


def run_scene(  # type: ignore[no-untyped-def]
    kind: str, project, software, cluster, var: Path, args: Any, submit, wait
) -> dict[str, object]:
    from django.conf import settings  # Django is set up by then

    from jobs.runner import cpus_for_chunk
    from renderhub.agent import bytecode

    scene_url = build_scene(kind, args.scene_frames, args.samples_scale)
    frames = f"1-{args.scene_frames}"
    threads = cpus_for_chunk()  # as RenderHub's worker starts each renderer
    baselines: list[float] = []
    baseline_cpu: list[float] = []
    splits: list[float] = []
    runs: list[float] = []
    run_cpu: list[tuple[float, float]] = []
    chunks: list[list[int]] = []
    timelines: list[dict[str, float]] = []
    spans: list[dict[str, float | None]] = []
    precompiled: list[bool] = []
    job: Any = None
    blender = shutil.which("blender") or "blender"

    def baseline(run: int) -> None:
        seconds, cpu = blender_all(scene_url, var / f"baseline-{kind}-{run}")
        baselines.append(round(seconds, 2))
        baseline_cpu.append(cpu)

    def renderhub() -> None:
        nonlocal job
        folder = settings.RENDER_BYTECODE_DIR
        precompiled.append(bool(folder) and bytecode.prefix_for(folder, blender) is not None)
        called, start, mark = time.time(), time.monotonic(), machine_cpu()
        job = wait(submit(project, software, cluster, scene_url, frames))
        runs.append(round(time.monotonic() - start, 2))
        run_cpu.append(cpu_since(mark))
        chunks.append([len(t.frames) for t in job.tasks.order_by("index")])
        timelines.append(phases(job, called))
        spans.append(against_the_ideal(job))

    for run in range(args.repeat):
        # Each RenderHub run is paired with its own `blender -a` and split run: this
        # machine's speed drifts by 10 % within minutes, so a ratio is only fair within a
        # round, and the order turns every other round, so a drift hits each alike.
        if run % 2 == 0:
            baseline(run)
        else:
            renderhub()
        split = blender_split(scene_url, var / f"split-{kind}-{run}", args.scene_frames, threads)
        splits.append(round(split, 2))
        if run % 2 == 0:
            renderhub()
        else:
            baseline(run)
    adaptive: dict[str, object] = {}
    for seconds in args.chunk_seconds:
        queued = wait(submit(project, software, cluster, scene_url, frames, chunk_seconds=seconds))
        adaptive[str(seconds)] = {
            "chunks": [len(t.frames) for t in queued.tasks.order_by("index")],
            **against_the_ideal(queued),
        }
    ratios = [round(r / b, 3) for r, b in zip(runs, baselines, strict=True)]
    split_ratios = [round(s / b, 3) for s, b in zip(splits, baselines, strict=True)]
    over_split = [round(r / s, 3) for r, s in zip(runs, splits, strict=True)]
    return {
        "frames": args.scene_frames,
        "blender_seconds": baselines,
        "split_seconds": splits,
        "renderhub_seconds": runs,
        "blender_cpu_seconds": baseline_cpu,
        "renderhub_cpu_seconds": [busy for busy, _ in run_cpu],
        "renderhub_nice_cpu_seconds": [nice for _, nice in run_cpu],
        "ratios": ratios,
        "ratio": round(statistics.median(ratios), 3),
        "split_ratios": split_ratios,
        "split_ratio": round(statistics.median(split_ratios), 3),
        "renderhub_over_split": over_split,
        "first_run_ratio": ratios[0],
        "renderhub_precompiled": precompiled,
        "installed_bytecode": installed_bytecode(),
        "renderhub_chunks": chunks,
        "renderhub_phases": timelines,
        **frame_spread(job),
        "renderhub_against_ideal": spans,
        "adaptive": adaptive,
    }
