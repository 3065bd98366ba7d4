"""A scene cannot end a kept Blender's chunk early: Blender prints object names in its
progress lines, and a name holding a carriage return and the driver's marker makes it
print the marker as a line of its own. The marker only counts with the token the agent
sent with the chunk's frames (renderhub.agent.warm)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from renderhub.agent.warm import DONE
from tests.agent import test_warm

pytestmark = [
    pytest.mark.blender,
    pytest.mark.skipif(shutil.which("blender") is None, reason="blender is not installed"),
]

demo_project = test_warm.demo_project
session = test_warm.session


def test_an_object_named_like_the_marker_does_not_end_the_chunk(
    session: test_warm.Session, demo_project: Path, tmp_path: Path
) -> None:
    hostile = tmp_path / "hostile" / "demo.blend"
    shutil.copytree(demo_project, hostile.parent)
    script = (
        "import bpy; "
        f"bpy.ops.wm.open_mainfile(filepath={str(demo_project / 'demo.blend')!r}); "
        "ob = next(o for o in bpy.data.objects if o.type == 'MESH'); "
        f"ob.name = 'x\\r' + {DONE!r}; "
        f"bpy.ops.wm.save_as_mainfile(filepath={str(hostile)!r})"
    )
    argv = ["blender", "-b", "--factory-startup", "--python-expr", script]
    subprocess.run(argv, capture_output=True, timeout=120, check=True)
    spec = test_warm.chunk_spec(tmp_path, hostile.parent, 1, [1, 2, 3], "none", inputs=[])
    spec["scene"] = str(hostile)

    result = session.chunk(spec)

    log = (tmp_path / "chunk-1" / "stdout.log").read_bytes()
    assert f"\r{DONE}\n".encode() in log, "the scene did make Blender print the bare marker"
    assert result.exit_code == 0, result.events
    assert result.frames("frame_done") == [1, 2, 3]
