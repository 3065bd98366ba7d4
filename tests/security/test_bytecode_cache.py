"""The renderers' compiled Python (RENDER_BYTECODE_DIR, renderhub.agent.bytecode) is run by
every Blender that starts on the machine, whatever its project: whoever could change it
would run code in every later job. So:

* code running in a sandboxed Blender (a hostile scene that got Python to run) cannot
  change a compiled module or add one;
* the build runs the renderer outside the sandbox, so a job's parameters cannot name the
  program (``{program}`` in a template), and a program others may replace is never run;
* a project's node temp output dir cannot be the folder.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
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
# for a module that has none yet, and make the folder writable for later.
ATTACK = """
import bpy_types, importlib.util as u, os, sys
prefix = sys.pycache_prefix
for what, act in [
    ("rewrite", lambda: open(u.cache_from_source(bpy_types.__file__), "r+b").write(b"evil")),
    ("add", lambda: open(os.path.join(prefix, "usr", "evil.cpython-311.pyc"), "wb").write(b"x")),
    ("chmod", lambda: os.chmod(prefix, 0o777)),
    ("replace", lambda: os.replace(u.cache_from_source(bpy_types.__file__), prefix + "/x")),
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


@pytest.mark.parametrize("_", [pytest.param(None, marks=needs_sandboxed_blender)])
def test_a_sandboxed_blender_cannot_change_the_compiled_modules(_: None, tmp_path: Path) -> None:
    blender = shutil.which("blender")
    assert blender is not None
    folder = tmp_path / "bytecode"
    assert bytecode.build(str(folder), blender)["ok"]
    before = digest(folder / "pycache")
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
    assert len(attempts) == 4 and all(" refused " in line for line in attempts), attempts
    assert digest(folder / "pycache") == before
    assert (folder / "pycache").stat().st_mode & 0o777 == 0o755


def trap(tmp_path: Path, where: Path) -> str:
    """A program that leaves a mark outside any sandbox if something runs it there."""
    where.mkdir(parents=True, exist_ok=True)
    program = where / "blender"
    program.write_text(f"#!/bin/sh\ntouch {tmp_path / 'ran-outside'}\nexit 0\n")
    program.chmod(0o755)
    return str(program)


def assert_never_built(tmp_path: Path, events: list[dict[str, Any]]) -> None:
    messages = " ".join(e.get("message", "") for e in events if e["event"] == "log")
    assert "compiling" not in messages and "precompiled" not in messages
    time.sleep(1.0)  # a build, had one started, would have run the program by now
    assert not (tmp_path / "ran-outside").exists()
    assert not (tmp_path / "bytecode").exists()


def test_a_job_parameter_cannot_name_the_program_the_build_runs(tmp_path: Path) -> None:
    program = trap(tmp_path, tmp_path / "mine")
    command = ["{program}", "-b", "{scene}", "-f", "{frame_list}"]

    events = run_agent(spec_for(tmp_path, command, variables={"program": program}), tmp_path)

    assert events[-1]["event"] == "finished"
    assert_never_built(tmp_path, events)


def test_a_program_others_may_replace_is_never_run_outside_the_sandbox(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    program = trap(tmp_path, shared)
    shared.chmod(0o777)  # anyone may swap the program (no sticky bit)

    events = run_agent(
        spec_for(tmp_path, [program, "-b", "{scene}", "-f", "{frame_list}"]), tmp_path
    )

    assert events[-1]["event"] == "finished"
    assert_never_built(tmp_path, events)
    assert not bytecode.trusted_program(program)
    shared.chmod(0o1777)  # as /tmp: others may add files, not replace ours
    assert bytecode.trusted_program(program)


@pytest.mark.skipif(os.geteuid() != 0, reason="makes a file of another user's (root only)")
def test_a_program_of_another_user_is_never_run_outside_the_sandbox(tmp_path: Path) -> None:
    program = trap(tmp_path, tmp_path / "theirs")
    os.chown(program, 65534, 65534)

    events = run_agent(
        spec_for(tmp_path, [program, "-b", "{scene}", "-f", "{frame_list}"]), tmp_path
    )

    assert events[-1]["event"] == "finished"
    assert_never_built(tmp_path, events)


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
