"""A renderer line saying the scene or camera asked for is not there fails the chunk, in the
renderer's own words, even though Blender carries on (the default scene, or nothing) and
exits 0."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from renderhub.agent.progress import BlenderParser, Update

from .conftest import Result

# Blender 3.4.1's own lines (from `blender -b s.blend -S NoSuchScene ...` and a scene whose
# camera was deleted).
CANT_FIND = "Can't find scene: 'Shot01' in file: '/scene/shot 01 ünï.blend'"
NO_CAMERA = "Error: Cannot render, no camera"
NO_CAMERA_IN = 'Error: No camera found in scene "Shot 02"'


@pytest.mark.parametrize("line", [CANT_FIND, NO_CAMERA, NO_CAMERA_IN])
def test_the_parser_reports_the_line_as_missing(line: str) -> None:
    parser = BlenderParser([1, 2], "/out", "shot_####")

    assert parser.feed(line + "\n", "stdout") == [Update("missing", message=line)]


@pytest.mark.parametrize(
    "line",
    [
        "Fra:1 Mem:9.60M | Time:00:00.00 | Scene, ViewLayer | Synchronizing | Can't find scene: x",
        "Error: Render error (Invalid argument) cannot save: '/out/shot_0002.png'",
        "Read blend: /scene/Can't find scene.blend",
        "Info: No camera found in scene is the name of my object",
    ],
)
def test_other_lines_are_not_missing(line: str) -> None:
    parser = BlenderParser([1], "/out", "shot_####")
    assert all(u.event != "missing" for u in parser.feed(line, "stdout"))


def test_blender_rendering_the_default_scene_is_stopped_and_every_frame_fails(
    make_spec: Callable[..., dict[str, Any]], run_agent: Callable[..., Result]
) -> None:
    # The fake prints the line, then renders (slowly) as Blender would: the default scene.
    spec = make_spec("--say", CANT_FIND, "--delay", "0.3")

    result = run_agent(spec)

    assert result.exit_code == 3  # like a missing input: every node would fail it alike
    finished = result.finished
    assert (finished["status"], finished["reason"]) == ("input_missing", CANT_FIND)
    assert finished["renderer_exit_code"] == -15, "stopped with SIGTERM, not left to finish"
    assert result.frames("frame_failed") == [1, 2, 3]
    assert {e["reason"] for e in result.of("frame_failed")} == {CANT_FIND}
    assert not result.of("frame_done")


def test_a_missing_camera_with_exit_status_0_fails_with_blenders_line(
    make_spec: Callable[..., dict[str, Any]], run_agent: Callable[..., Result], tmp_path: Path
) -> None:
    # As Blender does: the line, nothing saved, exit 0 (its frames may even be left over).
    spec = make_spec("--say", NO_CAMERA, "--skip", "1,2,3", frames=[1, 2, 3])

    result = run_agent(spec)

    assert (result.exit_code, result.finished["reason"]) == (3, NO_CAMERA)
    assert result.frames("frame_failed") == [1, 2, 3]
    assert not list((tmp_path / "out").glob("shot_*.png"))
