"""The renderer's Python compiled once per machine (renderhub.agent.bytecode), without
Blender: a Python program stands in for a renderer that embeds Python (Python itself
honours ``PYTHONPYCACHEPREFIX``, as Debian's Blender does), built unsandboxed (as with
``RENDER_SANDBOX=none``). With Blender, through the agent and its sandbox:
test_bytecode_blender.py."""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import sys
import threading
import time
from pathlib import Path

import pytest

from renderhub.agent import bytecode, idle, sandbox
from renderhub.agent.spec import Spec

# A "renderer": Python imports its start-up modules, then runs --python-expr as Blender.
# Its module folder (``lib/`` beside it) holds one module it does not import at start.
STAND_IN = """#!{python}
import json, os, py_compile, re, sys, textwrap, urllib.parse
sys.path[:] = [os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib")]
exec(sys.argv[sys.argv.index("--python-expr") + 1])
"""
# One that embeds a Python that ignores the environment (-E), as some Blender builds do.
DEAF = STAND_IN.replace("#!{python}", "#!{python} -E")
UNSANDBOXED = {"kind": "none"}
TAG = "cpython-{}{}.pyc".format(*sys.version_info[:2])


def stand_in(tmp_path: Path, text: str = STAND_IN, name: str = "renderer") -> str:
    path = tmp_path / "bin" / name
    (path.parent / "lib").mkdir(parents=True, exist_ok=True)
    (path.parent / "lib" / "later.py").write_text("WHEN = 'a scene asks'\n")
    path.write_text(text.format(python=sys.executable))
    path.chmod(0o755)
    return str(path)


def chunk(folder: Path | None, program: str) -> Spec:
    """A Blender chunk's spec as the agent reads it, naming ``program`` in its template."""
    return Spec(
        command=[program, "-b"],
        scene="/data/scene.blend",
        frames=[1],
        cpus=1,
        work_dir="/work",
        output_dir="/work/out",
        progress_parser="blender",
        bytecode_dir=None if folder is None else str(folder),
    )


def stamp_of(folder: Path, program: str) -> dict[str, object]:
    return json.loads((folder / f"renderer-{bytecode.program_key(program)}.json").read_text())


def test_a_build_compiles_what_the_renderer_imported_at_start(tmp_path: Path) -> None:
    program, folder = stand_in(tmp_path), tmp_path / "bytecode"

    record = bytecode.build(str(folder), program, UNSANDBOXED)

    assert record["state"] == "ready" and int(record["startup"]) > 3, record  # type: ignore[call-overload]
    assert record["more"] == 1, "its module folder: later.py"
    prefix = bytecode.prefix_for(str(folder), program)
    assert prefix == str(folder / f"pycache-{bytecode.program_key(program)}")
    import json as module

    assert Path(prefix + str(Path(module.__file__).parent), f"__init__.{TAG}").is_file()
    assert Path(prefix + str(tmp_path), "bin", "lib", f"later.{TAG}").is_file()
    # The folder is private; the prefix is readable (a root worker's sandbox runs as nobody).
    assert (folder.stat().st_mode & 0o777, Path(prefix).stat().st_mode & 0o777) == (0o700, 0o755)
    assert not bytecode.wanted(str(folder), program), "built once, not again"
    assert bytecode.build(str(folder), program, UNSANDBOXED)["reason"] == "built already"


def test_a_renderer_that_ignores_the_variable_is_never_given_it(tmp_path: Path) -> None:
    program, folder = stand_in(tmp_path, DEAF), tmp_path / "bytecode"

    record = bytecode.build(str(folder), program, UNSANDBOXED)

    assert record == {
        "state": "unsupported",
        "reason": f"{program} ignores PYTHONPYCACHEPREFIX",
        "program": program,
    }
    assert bytecode.prefix_for(str(folder), program) is None
    assert not bytecode.wanted(str(folder), program), "no build at every chunk"


def test_a_failed_build_is_tried_again_after_an_hour(tmp_path: Path) -> None:
    broken = stand_in(tmp_path, "#!/bin/sh\necho 'cannot start' >&2\nexit 3\n")
    folder = tmp_path / "bytecode"

    record = bytecode.build(str(folder), broken, UNSANDBOXED)

    assert record == {
        "state": "failed",
        "reason": f"{broken} exited 3: cannot start",
        "program": broken,
    }
    assert not bytecode.wanted(str(folder), broken)
    path = folder / f"renderer-{bytecode.program_key(broken)}.json"
    path.write_text(json.dumps({**stamp_of(folder, broken), "at": time.time() - 2 * 3600}))
    assert bytecode.wanted(str(folder), broken)


def test_an_upgraded_renderer_or_python_builds_again_and_the_old_prefix_goes(
    tmp_path: Path,
) -> None:
    program, folder = stand_in(tmp_path), tmp_path / "bytecode"
    assert bytecode.build(str(folder), program, UNSANDBOXED)["state"] == "ready"
    old = Path(str(bytecode.prefix_for(str(folder), program)))

    (tmp_path / "bin" / "lib" / "newer.py").write_text("")  # its module folder changed
    assert bytecode.prefix_for(str(folder), program) is None, "compiled from older sources"
    assert bytecode.wanted(str(folder), program)

    Path(program).write_text(STAND_IN.format(python=sys.executable) + "# 4.2\n")
    assert bytecode.wanted(str(folder), program), "another version of the program"
    assert bytecode.build(str(folder), program, UNSANDBOXED)["state"] == "ready"
    assert bytecode.prefix_for(str(folder), program) not in (None, str(old))
    assert not old.exists(), "the older version's prefix was removed"
    assert len(list(folder.glob("renderer-*.json"))) == 1


def test_two_programs_never_share_a_prefix(tmp_path: Path) -> None:
    one, two, folder = stand_in(tmp_path), stand_in(tmp_path, name="other"), tmp_path / "bc"

    for program in (one, two):
        assert bytecode.build(str(folder), program, UNSANDBOXED)["state"] == "ready"

    assert bytecode.prefix_for(str(folder), one) != bytecode.prefix_for(str(folder), two)


def test_a_folder_others_may_read_or_write_is_not_given_to_renderers(tmp_path: Path) -> None:
    program, folder = stand_in(tmp_path), tmp_path / "bytecode"
    assert bytecode.build(str(folder), program, UNSANDBOXED)["state"] == "ready"
    prefix = Path(str(bytecode.prefix_for(str(folder), program)))

    prefix.chmod(0o777)
    assert bytecode.prefix_for(str(folder), program) is None
    prefix.chmod(0o755)
    folder.chmod(0o755)  # others could take the build's lock
    assert bytecode.prefix_for(str(folder), program) is None
    assert not bytecode.wanted(str(folder), program)


def test_a_chunk_gets_the_prefix_read_only_when_ready_and_starts_one_build_otherwise(
    tmp_path: Path,
) -> None:
    program, folder = stand_in(tmp_path), tmp_path / "bytecode"
    box = sandbox.Sandbox(kind="none", read_only=("/data",), env={"A": "1"})

    before, note = bytecode.for_render(chunk(folder, program), box)
    _, second = bytecode.for_render(chunk(folder, program), box)

    quiet = {"A": "1", "PYTHONDONTWRITEBYTECODE": "1"}  # never beside the sources
    assert (before.read_only, before.env) == (box.read_only, quiet)
    assert note is not None and "in the background" in note
    assert second is None, "one build under way: the next chunk starts none"
    deadline = time.monotonic() + 300  # the build waits for a spare core
    while bytecode.prefix_for(str(folder), program) is None:
        assert time.monotonic() < deadline, f"no build: {stamp_of(folder, program)}"
        time.sleep(0.2)
    after, note = bytecode.for_render(chunk(folder, program), box)
    prefix = str(bytecode.prefix_for(str(folder), program))
    assert after.read_only == ("/data", prefix)
    assert after.env == {**quiet, "PYTHONPYCACHEPREFIX": prefix}
    assert note == f"renderers here start with their Python compiled in {prefix}"
    assert bytecode.for_render(chunk(None, program), box)[1] is None


def test_on_a_machine_never_idle_the_build_runs_once_enough_renderers_started_without_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The build waits for a spare core; others keep every core busy for good (faked), so
    it runs anyway once WORTH_STARTS chunks started without it."""
    program, folder = stand_in(tmp_path), tmp_path / "bytecode"
    began, cores = time.monotonic(), os.cpu_count() or 1
    busy = lambda: int((time.monotonic() - began) * cores * idle.TICKS)  # noqa: E731
    monkeypatch.setattr(idle, "_machine_ticks", busy)
    built: list[dict[str, object]] = []
    builder = threading.Thread(
        target=lambda: built.append(bytecode.build(str(folder), program, UNSANDBOXED))
    )
    builder.start()
    more = bytecode.WORTH_STARTS
    line = f"{program}: building whenever a core is spare (or after {more} more starts)"
    deadline = time.monotonic() + 30
    while bytecode.describe(str(folder)) != line:
        assert time.monotonic() < deadline, bytecode.describe(str(folder))
        time.sleep(0.1)

    box = sandbox.Sandbox(kind="none")
    for started in range(1, bytecode.WORTH_STARTS):
        assert bytecode.for_render(chunk(folder, program), box) == (box_quiet(box), None)
        assert f"(or after {bytecode.WORTH_STARTS - started} more starts)" in bytecode.describe(
            str(folder)
        )
    time.sleep(2.0)
    assert not built and bytecode.prefix_for(str(folder), program) is None, "still waiting"

    bytecode.for_render(chunk(folder, program), box)  # the tenth start without it
    builder.join(120)
    assert built and built[0]["state"] == "ready", built
    assert bytecode.prefix_for(str(folder), program) is not None
    assert not list(folder.glob("missed-*")), "the next build counts its own"


def box_quiet(box: sandbox.Sandbox) -> sandbox.Sandbox:
    return dataclasses.replace(box, env={**box.env, "PYTHONDONTWRITEBYTECODE": "1"})


def test_a_damaged_stamp_is_built_again_not_a_failed_chunk(tmp_path: Path) -> None:
    program, folder = stand_in(tmp_path), tmp_path / "bytecode"
    folder.mkdir(mode=0o700)
    stamp = folder / f"renderer-{bytecode.program_key(program)}.json"
    for text in ('{"state": "ready", "at": "soon"}', "[1, 2]", "not json"):
        stamp.write_text(text)
        assert bytecode.prefix_for(str(folder), program) is None
        assert bytecode.wanted(str(folder), program)


def test_an_operator_reads_in_one_line_whether_renderers_start_compiled(
    tmp_path: Path,
) -> None:
    """What the node reports (its page, System status): each program's state, and why."""
    program, deaf = stand_in(tmp_path), stand_in(tmp_path, DEAF, name="deaf")
    broken = stand_in(tmp_path, "#!/bin/sh\necho 'no display' >&2\nexit 3\n", name="broken")
    folder = tmp_path / "bytecode"
    assert bytecode.describe(None) == "off: renderers compile their Python at every start"
    assert bytecode.describe(str(folder)) == "not built yet: the first Blender chunk here builds it"

    bytecode.for_render(chunk(folder, program), sandbox.Sandbox(kind="none"))
    said = bytecode.describe(str(folder))  # the build just started, in the background
    deadline = time.monotonic() + 300  # the build waits for a spare core
    while bytecode.prefix_for(str(folder), program) is None:
        assert time.monotonic() < deadline, f"no build: {stamp_of(folder, program)}"
        time.sleep(0.1)
    with open(folder / bytecode.LOCK) as lock:  # the background build has let go
        fcntl.flock(lock, fcntl.LOCK_EX)
    record = stamp_of(folder, program)
    modules = int(str(record["startup"])) + int(str(record["more"]))
    assert said in (
        f"{program}: building whenever a core is spare (or after 9 more starts)",
        f"{program}: ready ({modules:,} modules)",
    )
    assert modules > 10
    assert bytecode.describe(str(folder)) == f"{program}: ready ({modules:,} modules)"

    bytecode.build(str(folder), deaf, UNSANDBOXED)
    bytecode.build(str(folder), broken, UNSANDBOXED)
    lines = bytecode.describe(str(folder)).split("; ")
    assert lines == sorted(
        [
            f"{program}: ready ({modules:,} modules)",
            f"{deaf}: ignores PYTHONPYCACHEPREFIX, compiles its Python at every start",
            f"{broken}: failed (exited 3: no display), tried again in 60 min",
        ]
    )

    # A stamp written long ago: a dead build, a failed one due again, an upgraded program.
    path = folder / f"renderer-{bytecode.program_key(broken)}.json"
    path.write_text(json.dumps({**stamp_of(folder, broken), "at": time.time() - 7200}))
    assert f"{broken}: failed (exited 3: no display), tried again when it next starts" in (
        bytecode.describe(str(folder))
    )
    path.write_text(json.dumps({"state": "building", "program": broken, "at": time.time() - 30}))
    missed = folder / f"missed-{bytecode.program_key(broken)}"
    missed.write_text("...")  # three renderers started without it
    assert f"{broken}: building whenever a core is spare (or after 7 more starts)" in (
        bytecode.describe(str(folder))
    )
    missed.write_text("." * bytecode.WORTH_STARTS)
    assert f"{broken}: building (10 renderers started without it)" in bytecode.describe(str(folder))
    path.write_text(json.dumps({"state": "building", "program": broken, "at": 0}))
    assert f"{broken}: a build died, tried again when it next starts" in (
        bytecode.describe(str(folder))
    )
    path.write_text("{damaged")
    Path(program).write_text(Path(program).read_text() + "# 2.0\n")
    assert bytecode.describe(str(folder)).split("; ") == [
        f"{deaf}: ignores PYTHONPYCACHEPREFIX, compiles its Python at every start",
        f"{program}: out of date (upgraded since), built again when it next starts",
    ]
    folder.chmod(0o755)
    assert bytecode.describe(str(folder)) == (
        f"{folder} is not a private folder: renderers compile their Python at every start"
    )


def test_the_line_is_bounded_and_older_stamps_are_built_again(tmp_path: Path) -> None:
    folder = bytecode._made(tmp_path / "bytecode")
    programs = [stand_in(tmp_path, name=f"renderer-{n}") for n in range(4)]
    for program in programs:  # four programs failing with long reasons: a long line
        record = {"state": "failed", "program": program, "reason": "x" * 300}
        bytecode._write(folder, bytecode.program_key(program), record)
    line = bytecode.describe(str(folder))
    assert len(line) == bytecode.DESCRIBED and line.startswith(f"{programs[0]}: failed (x")

    # A stamp from before stamps named their program is neither shown nor trusted.
    program = programs[0]
    key = bytecode.program_key(program)
    bytecode._write(folder, key, {"state": "unsupported", "reason": "from an older agent"})
    assert bytecode.wanted(str(folder), program)
    assert not bytecode.describe(str(folder)).startswith(f"{program}:")
