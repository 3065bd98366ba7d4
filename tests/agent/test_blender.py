"""The agent with real Blender on the generated demo scene (tiny, so it stays fast)."""

from __future__ import annotations

import itertools
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageChops, ImageStat

from .conftest import REPO, Result

pytestmark = [
    pytest.mark.blender,
    pytest.mark.skipif(shutil.which("blender") is None, reason="blender is not installed"),
]

DEMO_SCENE = REPO / "jobs" / "blender" / "demo_scene.py"
WIDTH, HEIGHT = 64, 48
BLENDER_COMMAND = [
    "blender",
    "-b",
    "{scene}",
    "-o",
    "{output_pattern}",
    "-F",
    "PNG",
    "-t",
    "{cpus}",
    "-f",
    "{frame_list}",
]


@pytest.fixture(scope="session")
def demo_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo scene, generated once: project/demo.blend + project/textures/checker.png."""
    project = tmp_path_factory.mktemp("demo") / "project"
    argv = ["blender", "-b", "--factory-startup", "--python", str(DEMO_SCENE), "--"]
    argv += [str(project / "demo.blend"), "--frames", "3", "--width", str(WIDTH)]
    argv += ["--height", str(HEIGHT), "--samples", "4"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (project / "demo.blend").is_file()
    assert (project / "textures" / "checker.png").is_file()
    return project


def blender_spec(tmp_path: Path, project: Path, **overrides: Any) -> dict[str, Any]:
    staged = tmp_path / "node" / "project"
    spec = {
        "version": 1,
        "job": 1,
        "task": 1,
        "command": BLENDER_COMMAND,
        "scene": str(staged / "demo.blend"),
        "frames": [1, 2, 3],
        "cpus": 2,
        "work_dir": str(tmp_path / "node"),
        "output_dir": str(tmp_path / "node" / "out"),
        "output_name": "shot_####",
        "publish_dir": str(tmp_path / "published"),
        # Staged away from the texture's original folder: //textures/ must come along.
        "inputs": [{"src": str(project), "dst": str(staged)}],
        "progress_parser": "blender",
        "timeout": 120,
        "stall_timeout": 60,
    }
    spec.update(overrides)
    return spec


def magenta_pixels(image: Image.Image) -> int:
    """Pixels in Blender's colour for a missing texture."""
    data = image.tobytes()
    rgb = zip(data[0::3], data[1::3], data[2::3], strict=True)
    return sum(r > 200 and b > 200 and g < 60 for r, g, b in rgb)


def test_blender_renders_three_frames(
    demo_project: Path, tmp_path: Path, run_cli: Callable[..., Result]
) -> None:
    result = run_cli(blender_spec(tmp_path, demo_project))
    assert result.exit_code == 0, result.events
    assert result.of("staged")[0]["files"] == 2
    assert result.frames("frame_started") == [1, 2, 3]
    assert result.of("progress"), "Blender's Fra: lines give progress"
    done = result.of("frame_done")
    assert [e["frame"] for e in done] == [1, 2, 3]
    images = []
    for event in done:
        (output,) = event["outputs"]
        assert output == str(tmp_path / "published" / f"shot_000{event['frame']}.png")
        with Image.open(output) as image:
            assert image.format == "PNG"
            assert image.size == (WIDTH, HEIGHT)
            images.append(image.convert("RGB"))
    for a, b in itertools.pairwise(images):
        diff = ImageStat.Stat(ImageChops.difference(a, b)).mean
        assert sum(diff) > 3, "the ball moves: consecutive frames must differ"
    assert magenta_pixels(images[0]) < WIDTH * HEIGHT // 50, "texture lost in staging"
    assert "Saved: '" in (tmp_path / "node" / "stdout.log").read_text()


def test_blender_failure_reason(
    demo_project: Path, tmp_path: Path, run_cli: Callable[..., Result]
) -> None:
    broken = tmp_path / "broken.blend"
    broken.write_text("not a blend file")
    result = run_cli(blender_spec(tmp_path, demo_project, scene=str(broken), inputs=[]))
    assert result.exit_code == 4
    assert result.finished["renderer_exit_code"] == 1
    assert "Error: File format is not supported" in result.finished["reason"]
    assert result.frames("frame_failed") == [1, 2, 3]


def test_a_scene_name_blender_cannot_find_fails_the_chunk_with_its_line(
    demo_project: Path, tmp_path: Path, run_cli: Callable[..., Result]
) -> None:
    # Blender prints "Can't find scene" and renders the default scene, exit status 0.
    command = [*BLENDER_COMMAND[:3], "-S", "NoSuchScene", *BLENDER_COMMAND[3:]]
    spec = blender_spec(tmp_path, demo_project, command=command, frames=[1])

    result = run_cli(spec)

    staged = tmp_path / "node" / "project" / "demo.blend"
    line = f"Can't find scene: 'NoSuchScene' in file: '{staged}'"
    assert (result.exit_code, result.finished["reason"]) == (
        3,
        line,
    )  # a missing input: not retried
    assert [(e["frame"], e["reason"]) for e in result.of("frame_failed")] == [(1, line)]
    assert not list((tmp_path / "published").glob("*")), "the default scene is not published"
