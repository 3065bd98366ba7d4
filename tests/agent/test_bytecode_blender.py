"""Blender's Python compiled once per machine, through the agent and its bwrap sandbox: a
chunk starts the build, the Blenders started after it load their modules compiled, and
a kept Blender is not restarted for it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from renderhub.agent import bytecode, sandbox

from . import test_blender, test_warm
from .conftest import Result
from .test_blender import BLENDER_COMMAND, blender_spec

demo_project = test_blender.demo_project  # the generated demo scene (a session fixture)
session = test_warm.session

pytestmark = [
    pytest.mark.blender,
    pytest.mark.skipif(shutil.which("blender") is None, reason="blender is not installed"),
    pytest.mark.skipif(sandbox.problem("bwrap") is not None, reason="bubblewrap cannot run here"),
]

# Where the renderer's modules come from: its pycache prefix, and whether the start-up
# module bpy_types has its bytecode there.
PROBE = (
    "import bpy_types, importlib.util as u, os, sys; "
    "print('PYCACHE', sys.pycache_prefix, "
    "os.path.exists(u.cache_from_source(bpy_types.__file__)), flush=True); "
    "print('WRITES', not sys.dont_write_bytecode, flush=True)"
)


def probe_spec(tmp_path: Path, project: Path, name: str, **more: Any) -> dict[str, Any]:
    command = [*BLENDER_COMMAND[:-2], "--python-expr", PROBE, *BLENDER_COMMAND[-2:]]
    spec = blender_spec(tmp_path, project, command=command, frames=[1], **more)
    spec.update(
        work_dir=str(tmp_path / name),
        publish_dir=str(tmp_path / f"published-{name}"),
        output_dir=str(tmp_path / name / "out"),
        bytecode_dir=str(tmp_path / "bytecode"),
        sandbox={"kind": "bwrap", "read_only": [str(tmp_path / "node" / "project")]},
    )
    return spec


def wait_built(folder: Path, timeout: float = 300) -> str:
    """The prefix of Blender's build, once the background build has put it in place (it
    waits for a spare core: the suite's other tests may keep the machine busy a while)."""
    program = shutil.which("blender")
    assert program is not None
    stamp = folder / f"renderer-{bytecode.program_key(program)}.json"
    deadline = time.monotonic() + timeout
    while not stamp.exists() or json.loads(stamp.read_text())["state"] == "building":
        assert time.monotonic() < deadline, "the background build did not finish"
        time.sleep(0.2)
    prefix = bytecode.prefix_for(str(folder), program)
    assert prefix is not None, stamp.read_text()
    return prefix


def logged(result: Result) -> str:
    return "\n".join(e["message"] for e in result.of("log"))


def test_blender_itself_builds_its_modules_in_the_sandbox(tmp_path: Path) -> None:
    program, folder = shutil.which("blender"), tmp_path / "bytecode"
    assert program is not None

    record = bytecode.build(str(folder), program, {"kind": "bwrap"})

    assert record["state"] == "ready" and "startup_failed" not in record, record
    prefix = bytecode.prefix_for(str(folder), program)
    assert prefix is not None
    owners = {p.lstat().st_uid for p in Path(prefix).rglob("*")}
    assert owners == {os.geteuid()}, "made the worker's, whoever the sandbox ran as"
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), bytecode.ENV: prefix}
    argv = [program, "-b", "--factory-startup", "--python-expr", PROBE]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert f"PYCACHE {prefix} True" in done.stdout


def test_the_first_chunk_builds_and_the_next_blender_starts_from_bytecode(
    demo_project: Path, tmp_path: Path, run_cli: Callable[..., Result]
) -> None:
    first = run_cli(probe_spec(tmp_path, demo_project, "first"))
    assert first.exit_code == 0, first.events
    assert "in the background" in logged(first)
    assert "PYCACHE None " in (tmp_path / "first" / "stdout.log").read_text()

    prefix = wait_built(tmp_path / "bytecode")
    second = run_cli(probe_spec(tmp_path, demo_project, "second", inputs=[]))

    assert second.exit_code == 0, second.events
    assert f"compiled in {prefix}" in logged(second)
    assert f"PYCACHE {prefix} True" in (tmp_path / "second" / "stdout.log").read_text()
    assert second.frames("frame_done") == [1]


def test_a_kept_blender_is_not_restarted_when_the_bytecode_is_ready(
    session: test_warm.Session, demo_project: Path, tmp_path: Path
) -> None:
    def chunk(n: int, frames: list[int], **more: Any) -> Result:
        spec = test_warm.chunk_spec(tmp_path, demo_project, n, frames, "bwrap", **more)
        spec["bytecode_dir"] = str(tmp_path / "bytecode")
        return session.chunk(spec)

    first = chunk(1, [1])
    wait_built(tmp_path / "bytecode")
    second = chunk(2, [2, 3], inputs=[])

    assert [r.exit_code for r in (first, second)] == [0, 0]
    (started,) = second.of("started")
    assert started["warm"] is True, "the job's Blender went on: a start-up saved, not paid"
    assert started["pid"] == first.of("started")[0]["pid"]
    assert second.frames("frame_done") == [2, 3]


def test_only_a_blender_that_starts_counts_toward_running_the_build_anyway(
    session: test_warm.Session, demo_project: Path, tmp_path: Path
) -> None:
    """Each start without the compiled Python, while its build waits, brings the build's
    run nearer (bytecode.WORTH_STARTS); a chunk on the job's kept Blender starts nothing."""
    folder = bytecode._made(tmp_path / "bytecode")

    def chunk(n: int, frames: list[int], **more: Any) -> Result:
        spec = test_warm.chunk_spec(tmp_path, demo_project, n, frames, "bwrap", **more)
        spec["bytecode_dir"] = str(folder)
        return session.chunk(spec)

    blender = sandbox.find_program(BLENDER_COMMAND[0], sandbox.Sandbox(kind="none"))
    key = bytecode.program_key(blender)  # a build under way, waiting for a spare core:
    bytecode._write(folder, key, {"state": "building", "program": blender})  # none starts
    first = chunk(1, [1])
    second = chunk(2, [2, 3], inputs=[])

    assert [r.exit_code for r in (first, second)] == [0, 0]
    assert second.of("started")[0]["warm"] is True
    assert [p.stat().st_size for p in folder.glob("missed-*")] == [1], "one Blender started"
    assert "(or after 9 more starts)" in bytecode.describe(str(folder))


def test_blender_without_a_sandbox_writes_no_bytecode_into_its_install(
    demo_project: Path, tmp_path: Path, run_cli: Callable[..., Result]
) -> None:
    """Run by root with RENDER_SANDBOX=none, Blender would write ``__pycache__`` folders
    into /usr/share/blender: a render changing the installed program."""
    spec = probe_spec(tmp_path, demo_project, "plain", sandbox={"kind": "none"})
    del spec["bytecode_dir"]

    result = run_cli(spec)

    assert result.exit_code == 0, result.events
    printed = (tmp_path / "plain" / "stdout.log").read_text()
    assert "PYCACHE None " in printed and "WRITES False" in printed
