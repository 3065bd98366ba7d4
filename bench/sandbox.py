"""What the bubblewrap sandbox costs a renderer: the same Blender chunk in and out of it.

The demo scene (4 frames at the demo's size) is rendered by ``sandbox.popen`` with
``kind="bwrap"`` and ``kind="none"``, alternately, ``--runs`` times each, as the node agent
runs it (same argv, limits, cleared environment); and ``/bin/true`` is started 50 times
each way, which is the sandbox's start-up cost alone. Whole-job timings through a worker
(``bench/render.py --sandbox both``) vary by several per cent from run to run on this
machine; this isolates the renderer.

Usage: ``python bench/sandbox.py [--runs 8] [--frames 4]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from renderhub.agent import sandbox  # noqa: E402 (after the path is set)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--frames", type=int, default=4)
    return parser.parse_args()


def build_scene(folder: Path, frames: int) -> Path:
    scene = folder / "scene" / "demo.blend"
    script = ROOT / "jobs" / "blender" / "demo_scene.py"
    argv = ["blender", "-b", "--factory-startup", "--python", str(script), "--", str(scene)]
    subprocess.run([*argv, "--frames", str(frames)], check=True, capture_output=True)
    return scene


def timed(argv: list[str], box: sandbox.Sandbox, out: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    start = time.monotonic()
    proc = sandbox.popen(argv, box, "/tmp", stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed in {box.kind}: {err.decode()[-500:]}")
    return time.monotonic() - start


def main() -> int:
    args = parse_args()
    if (why := sandbox.problem("bwrap")) is not None:
        raise SystemExit(why)
    work = Path(tempfile.mkdtemp(prefix="renderhub-bench-sandbox-"))
    try:
        scene = build_scene(work, args.frames)
        out = work / "out"
        boxes = {
            kind: sandbox.Sandbox(
                kind=kind,
                read_only=(str(scene.parent),),
                writable=(str(out),),
                scratch=str(work / f"scratch-{kind}"),
                limits=sandbox.Limits(file_size=16 << 30, processes=4096),
            )
            for kind in ("bwrap", "none")
        }
        render = ["blender", "-b", str(scene), "--disable-autoexec", "-noaudio", "-E", "CYCLES"]
        render += ["-o", str(out / "demo_####"), "-F", "PNG", "-t", "2", "-a"]
        seconds: dict[str, list[float]] = {"bwrap": [], "none": []}
        for run in range(args.runs):
            for kind in ("bwrap", "none") if run % 2 == 0 else ("none", "bwrap"):
                seconds[kind].append(round(timed(render, boxes[kind], out), 3))
        start_up: dict[str, float] = {}
        for kind, box in boxes.items():
            runs = [timed(["/bin/true"], box, out) for _ in range(50)]
            start_up[kind] = round(statistics.median(runs) * 1000, 1)
        medians = {kind: statistics.median(runs) for kind, runs in seconds.items()}
        result = {
            "frames": args.frames,
            "render_seconds": seconds,
            "median_seconds": {k: round(v, 3) for k, v in medians.items()},
            "cost_percent": round(100 * (medians["bwrap"] / medians["none"] - 1), 2),
            "start_up_ms_median": start_up,
        }
        print(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
