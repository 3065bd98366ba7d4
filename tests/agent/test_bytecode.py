"""The renderer's Python compiled once per machine (renderhub.agent.bytecode), without
Blender: a Python program stands in for a renderer that embeds Python (Python itself
honours ``PYTHONPYCACHEPREFIX``, as Debian's Blender does). With Blender, through the
agent and its sandbox: test_bytecode_blender.py."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from renderhub.agent import bytecode, sandbox

# A "renderer": Python imports its start-up modules, then runs --python-expr as Blender.
# Its module folder (``lib/`` beside it) holds one module it does not import at start.
STAND_IN = """#!{python}
import json, os, py_compile, re, sys, textwrap, urllib.parse
sys.path[:] = [os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib")]
exec(sys.argv[sys.argv.index("--python-expr") + 1])
"""
# One that embeds a Python that ignores the environment (-E), as some Blender builds do.
DEAF = STAND_IN.replace("#!{python}", "#!{python} -E")


def stand_in(tmp_path: Path, text: str = STAND_IN, name: str = "renderer") -> str:
    path = tmp_path / "bin" / name
    (path.parent / "lib").mkdir(parents=True, exist_ok=True)
    (path.parent / "lib" / "later.py").write_text("WHEN = 'a scene asks'\n")
    path.write_text(text.format(python=sys.executable))
    path.chmod(0o755)
    return str(path)


def stamp(folder: Path) -> dict[str, object]:
    (path,) = folder.glob("renderer-*.json")
    return json.loads(path.read_text())


def test_a_build_compiles_what_the_renderer_imported_at_start(tmp_path: Path) -> None:
    program, folder = stand_in(tmp_path), tmp_path / "bytecode"

    record = bytecode.build(str(folder), program)

    assert record["ok"] is True and int(record["startup"]) > 3, record  # type: ignore[call-overload]
    assert record["more"] == 1, "its module folder: later.py"
    prefix = bytecode.prefix_for(str(folder), program)
    assert prefix == str(folder / "pycache")
    import json as module

    tag = "cpython-{}{}.pyc".format(*sys.version_info[:2])
    assert Path(prefix + str(Path(module.__file__).parent), f"__init__.{tag}").is_file()
    assert Path(prefix + str(tmp_path), "bin", "lib", f"later.{tag}").is_file()
    assert (folder.stat().st_mode & 0o777, Path(prefix).stat().st_mode & 0o777) == (0o755, 0o755)
    assert not bytecode.wanted(str(folder), program), "built once, not again"
    assert bytecode.build(str(folder), program)["reason"] == "built already"


def test_a_renderer_that_ignores_the_variable_is_never_given_it(tmp_path: Path) -> None:
    program, folder = stand_in(tmp_path, DEAF), tmp_path / "bytecode"

    record = bytecode.build(str(folder), program)

    assert record["unsupported"] is True and "ignores PYTHONPYCACHEPREFIX" in str(record)
    assert bytecode.prefix_for(str(folder), program) is None
    assert not bytecode.wanted(str(folder), program), "no build at every chunk"


def test_a_failed_build_is_tried_again_after_an_hour_and_an_upgrade_at_once(
    tmp_path: Path,
) -> None:
    broken = stand_in(tmp_path, "#!/bin/sh\necho 'cannot start' >&2\nexit 3\n")
    folder = tmp_path / "bytecode"

    record = bytecode.build(str(folder), broken)

    assert record == {"ok": False, "reason": f"{broken} exited 3: cannot start"}
    assert not bytecode.wanted(str(folder), broken)
    (path,) = folder.glob("renderer-*.json")
    path.write_text(json.dumps({**stamp(folder), "at": time.time() - 2 * 3600}))
    assert bytecode.wanted(str(folder), broken)

    working = stand_in(tmp_path)
    assert bytecode.build(str(folder), working)["ok"]
    Path(working).write_text(STAND_IN.format(python=sys.executable) + "# 4.2\n")
    assert bytecode.wanted(str(folder), working), "another version of the program: build again"
    assert bytecode.prefix_for(str(folder), working) is None


def test_a_folder_others_may_write_is_not_given_to_renderers(tmp_path: Path) -> None:
    program, folder = stand_in(tmp_path), tmp_path / "bytecode"
    assert bytecode.build(str(folder), program)["ok"]

    (folder / "pycache").chmod(0o777)

    assert bytecode.prefix_for(str(folder), program) is None


def test_a_chunk_gets_the_prefix_read_only_when_ready_and_starts_the_build_otherwise(
    tmp_path: Path,
) -> None:
    program, folder = stand_in(tmp_path), tmp_path / "bytecode"
    box = sandbox.Sandbox(kind="none", read_only=("/data",), env={"A": "1"})

    before, note = bytecode.for_render(str(folder), [program, "-b"], box)

    quiet = {"A": "1", "PYTHONDONTWRITEBYTECODE": "1"}  # never beside the sources
    assert (before.read_only, before.env) == (box.read_only, quiet)
    assert note is not None and "in the background" in note
    deadline = time.monotonic() + 60
    while bytecode.prefix_for(str(folder), program) is None:
        assert time.monotonic() < deadline, "the background build did not finish"
        time.sleep(0.2)
    after, note = bytecode.for_render(str(folder), [program, "-b"], box)
    prefix = str(folder / "pycache")
    assert after.read_only == ("/data", prefix)
    assert after.env == {**quiet, "PYTHONPYCACHEPREFIX": prefix}
    assert note == f"the renderer's Python is precompiled in {prefix}"
    assert bytecode.for_render(None, [program], box)[1] is None
