"""The renderers' compiled Python (RENDER_BYTECODE_DIR, renderhub.agent.bytecode) is run by
every Blender that starts on the machine, whatever its project: whoever could change it
would run code in every later job. So:

* code running in a sandboxed Blender (a hostile scene that got Python to run) cannot
  change a compiled module or add one;
* the build runs in the render sandbox, and what one program's build writes only that
  program's renderers read: a template naming a hostile program gets nothing outside
  its sandbox and cannot touch Blender's modules; a job's parameters cannot name the
  program at all;
* a project's node temp output dir cannot be the folder.
"""

from __future__ import annotations

import hashlib
import html
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from renderhub.agent import bytecode, sandbox
from tests.agent.test_blender import BLENDER_COMMAND

REPO = Path(__file__).resolve().parents[2]

needs_sandboxed_blender = [
    pytest.mark.blender,
    pytest.mark.skipif(shutil.which("blender") is None, reason="blender is not installed"),
    pytest.mark.skipif(sandbox.problem("bwrap") is not None, reason="bubblewrap cannot run here"),
]

# What hostile code in the renderer tries: rewrite a compiled start-up module, add one
# for a module that has none yet, make the folder writable for later, and fill the
# machine's start counters beside it (forcing a build to run beside the renders).
ATTACK = """
import bpy_types, glob, importlib.util as u, os, sys
prefix = sys.pycache_prefix
counters = glob.glob(os.path.join(os.path.dirname(prefix), "missed-*"))
counter = counters[0] if counters else os.path.join(os.path.dirname(prefix), "missed-x")
for what, act in [
    ("rewrite", lambda: open(u.cache_from_source(bpy_types.__file__), "r+b").write(b"evil")),
    ("add", lambda: open(os.path.join(prefix, "usr", "evil.cpython-311.pyc"), "wb").write(b"x")),
    ("chmod", lambda: os.chmod(prefix, 0o777)),
    ("replace", lambda: os.replace(u.cache_from_source(bpy_types.__file__), prefix + "/x")),
    ("count", lambda: open(counter, "ab").write(b"." * 100)),
]:
    try:
        act()
        print("ATTACK", what, "worked", flush=True)
    except OSError as exc:
        print("ATTACK", what, "refused", type(exc).__name__, flush=True)
"""


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def run_agent(spec: dict[str, Any], tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / f"spec-{time.monotonic_ns()}.json"
    path.write_text(json.dumps(spec))
    done = subprocess.run(
        [sys.executable, "-m", "renderhub.agent", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def spec_for(tmp_path: Path, command: list[str], **more: Any) -> dict[str, Any]:
    scene = tmp_path / "project" / "scene.blend"
    if not scene.exists():
        scene.parent.mkdir(exist_ok=True)
        scene.write_bytes(b"BLENDER-not-really")
    return {
        "version": 1,
        "job": 1,
        "task": 1,
        "command": command,
        "scene": str(scene),
        "frames": [1],
        "cpus": 1,
        "work_dir": str(tmp_path / "work"),
        "output_dir": str(tmp_path / "work" / "out"),
        "progress_parser": "blender",
        "timeout": 60,
        "bytecode_dir": str(tmp_path / "bytecode"),
        "sandbox": {"kind": "bwrap" if sandbox.problem("bwrap") is None else "none"},
        **more,
    }


def blenders_build(folder: Path) -> tuple[str, Path]:
    """Blender's compiled Python, built in the sandbox as a first chunk would: its prefix."""
    blender = shutil.which("blender")
    assert blender is not None
    assert bytecode.build(str(folder), blender, {"kind": "bwrap"})["state"] == "ready"
    return blender, Path(str(bytecode.prefix_for(str(folder), blender)))


@pytest.mark.parametrize("_", [pytest.param(None, marks=needs_sandboxed_blender)])
def test_a_sandboxed_blender_cannot_change_the_compiled_modules(_: None, tmp_path: Path) -> None:
    blender, prefix = blenders_build(tmp_path / "bytecode")
    before = digest(prefix)
    scene = tmp_path / "project" / "scene.blend"
    scene.parent.mkdir()
    subprocess.run(
        [blender, "-b", "--factory-startup", "--python-expr",
         "import bpy; s = bpy.context.scene; s.render.engine = 'CYCLES'; "
         "s.cycles.samples = 1; s.render.resolution_x, s.render.resolution_y = 32, 24; "
         f"bpy.ops.wm.save_as_mainfile(filepath={str(scene)!r})"],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    command = [*BLENDER_COMMAND[:-2], "--python-expr", ATTACK, *BLENDER_COMMAND[-2:]]

    events = run_agent(spec_for(tmp_path, command), tmp_path)

    assert events[-1]["event"] == "finished", events
    printed = (tmp_path / "work" / "stdout.log").read_text()
    attempts = [line for line in printed.splitlines() if line.startswith("ATTACK")]
    assert len(attempts) == 5 and all(" refused " in line for line in attempts), attempts
    assert digest(prefix) == before
    assert not list(prefix.parent.glob("missed-*")), "no start counted by the render itself"
    assert prefix.stat().st_mode & 0o777 == 0o755


def trap(tmp_path: Path, where: Path, victim: Path | None = None) -> str:
    """A "renderer" that leaves a mark outside its sandbox if it can, and tries to write
    into another program's compiled modules; it tells who it ran as."""
    where.mkdir(parents=True, exist_ok=True)
    program = where / "blender"
    poison = f"echo evil > {victim}/usr/poison.pyc 2>/dev/null; " if victim else ""
    program.write_text(
        f"#!/bin/sh\ntouch {tmp_path / 'ran-outside'} 2>/dev/null\n{poison}\n"
        'echo "ran as uid $(id -u)" >&2\nexit 1\n'
    )
    program.chmod(0o755)
    return str(program)


def test_a_job_parameter_cannot_name_the_program_the_build_runs(tmp_path: Path) -> None:
    program = trap(tmp_path, tmp_path / "mine")
    command = ["{program}", "-b", "{scene}", "-f", "{frame_list}"]

    events = run_agent(spec_for(tmp_path, command, variables={"program": program}), tmp_path)

    assert events[-1]["event"] == "finished"
    messages = " ".join(e.get("message", "") for e in events if e["event"] == "log")
    assert "compil" not in messages
    time.sleep(1.0)  # a build, had one started, would have run the program by now
    assert not (tmp_path / "ran-outside").exists()
    assert not (tmp_path / "bytecode").exists()


@pytest.mark.parametrize("_", [pytest.param(None, marks=needs_sandboxed_blender)])
def test_a_hostile_programs_build_stays_in_its_sandbox_and_away_from_blenders(
    _: None, tmp_path: Path
) -> None:
    folder = tmp_path / "bytecode"
    _, theirs = blenders_build(folder)
    before = digest(theirs)
    tools = tmp_path / "tools"
    program = trap(tmp_path, tools, victim=theirs)
    command = [program, "-b", "{scene}", "-f", "{frame_list}"]  # a software editor's template
    spec = spec_for(tmp_path, command)
    spec["sandbox"]["read_only"] = [str(tools)]

    events = run_agent(spec, tmp_path)

    assert events[-1]["event"] == "finished"
    messages = " ".join(e.get("message", "") for e in events if e["event"] == "log")
    assert "in the background" in messages
    stamp = folder / f"renderer-{bytecode.program_key(program)}.json"
    deadline = time.monotonic() + 300  # it waits for a spare core
    while json.loads(stamp.read_text())["state"] == "building":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    record = json.loads(stamp.read_text())
    assert (record["state"], record["reason"]) == (
        "failed",
        f"{program} exited 1: ran as uid 65534",
    )
    assert not (tmp_path / "ran-outside").exists()
    assert digest(theirs) == before and not (theirs / "usr" / "poison.pyc").exists()


@pytest.mark.django_db
def test_no_project_writes_its_frames_into_the_compiled_modules(
    client: Any, alice: Any, project: Any, settings: Any, tmp_path: Path
) -> None:
    from tests.security.test_output_root import save_form

    settings.RENDER_BYTECODE_DIR = str(tmp_path / "bytecode")
    client.force_login(alice)

    response = save_form(client, project, f"{tmp_path}/bytecode/pycache/usr/")

    assert response.status_code == 200
    assert "the renderers' compiled Python" in html.unescape(response.content.decode())
    project.refresh_from_db()
    assert project.node_output_dir == "/tmp/renderhub/output/"
