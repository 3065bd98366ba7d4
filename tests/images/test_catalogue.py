"""The software templates: each one is a valid Software, and its command does what it says
with the real programs (Blender 3.4, ffmpeg 5.1)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from PIL import Image

from images import catalogue, parameters
from images.models import ComputeImage, Software
from jobs import services
from jobs.choices import JobState
from renderhub import storage
from renderhub.agent.template import expand, standard_values
from tests.conftest import build_demo_scene
from tests.workers import wait_for

KEYS = [entry.key for entry in catalogue.CATALOGUE]


def from_template(key: str, image: ComputeImage | None = None, **fields: Any) -> Software:
    template = catalogue.get(key)
    assert template is not None
    values = {**template.initial(), **fields}
    return Software(image=image or ComputeImage(name="img", image_id="local"), **values)


def argv_of(software: Software, scene: str, frames: list[int], output_dir: str, **values: Any):
    """The argv the agent would run (output_name is ``<scene stem>_####``, as jobs set it)."""
    chosen = parameters.coerce_values(software.parameters, values)
    stem = PurePosixPath(scene).stem
    standard = standard_values(
        scene=scene, frames=frames, cpus=2, output_dir=output_dir, output_name=f"{stem}_####"
    )
    return expand(software.command_template, {**standard, **chosen})


@pytest.mark.parametrize("key", KEYS)
def test_every_template_is_a_valid_software(key: str) -> None:
    software = from_template(key)
    software.clean()
    template = catalogue.get(key)
    assert template is not None and template.title and template.description
    assert software.parameters == parameters.validate_definitions(template.parameters)


def test_keys_are_unique_and_unknown_keys_give_nothing() -> None:
    assert len(set(KEYS)) == len(KEYS)
    assert catalogue.get("maya") is None
    assert catalogue.get(None) is None
    assert catalogue.get("") is None


def test_a_template_hands_out_fresh_lists() -> None:
    first = catalogue.get("blender").initial()  # type: ignore[union-attr]
    first["command_template"].append("--oops")
    first["parameters"][0]["default"] = "BLENDER_EEVEE"
    again = catalogue.get("blender").initial()  # type: ignore[union-attr]
    assert "--oops" not in again["command_template"]
    assert again["parameters"][0]["default"] == "CYCLES"


def test_a_template_is_named_apart_from_taken_names() -> None:
    blender = catalogue.get("blender")
    assert blender is not None
    assert blender.initial()["name"] == "blender"
    assert blender.initial({"blender", "blender-2", "maya"})["name"] == "blender-3"


def test_the_blender_template_keeps_the_built_in_blender_command(
    blender_software: Software,
) -> None:
    template = catalogue.get("blender")
    assert template is not None
    built_in = blender_software.command_template
    assert template.command[: len(built_in)] == built_in  # the migrated one, plus the device
    assert template.command[len(built_in) :] == ["--", "--cycles-device", "{device}"]


def test_the_named_scene_template_needs_the_scene_name() -> None:
    software = from_template("blender-scene")
    software.clean()
    with pytest.raises(Exception, match="'blender_scene' is required"):
        argv_of(software, "/s/a.blend", [1], "/out")
    argv = argv_of(software, "/s/a b.blend", [1, 2, 3], "/out", blender_scene="Shot 01")
    assert argv[argv.index("-S") + 1] == "Shot 01"
    assert argv.index("-S") > argv.index("/s/a b.blend")  # picked after the file is read


blender_only = pytest.mark.skipif(shutil.which("blender") is None, reason="needs Blender")


@pytest.mark.blender
@blender_only
@pytest.mark.parametrize(
    ("key", "extra"),
    [("blender", {}), ("blender-scene", {"blender_scene": "Scene"})],
)
def test_blenders_command_renders_with_real_blender(
    key: str, extra: dict[str, Any], tmp_path: Path
) -> None:
    scene = build_demo_scene(tmp_path / "in put" / "ball.blend", frames=3, width=32, height=24)
    out = tmp_path / "out"
    out.mkdir()
    argv = argv_of(from_template(key), str(scene), [2, 3], str(out), format="JPEG", **extra)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Can't find scene" not in done.stdout
    assert sorted(p.name for p in out.iterdir()) == ["ball_0002.jpg", "ball_0003.jpg"]
    with Image.open(out / "ball_0002.jpg") as img:
        assert img.size == (32, 24)


@pytest.mark.blender
@blender_only
def test_blender_says_so_when_the_chosen_device_is_missing(tmp_path: Path) -> None:
    """A GPU the node lacks stops Blender with an error, not a silent CPU render."""
    scene = build_demo_scene(tmp_path / "ball.blend", frames=1, width=16, height=16)
    argv = argv_of(from_template("blender"), str(scene), [1], str(tmp_path), device="CUDA")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert "Found no Cycles device" in done.stdout + done.stderr
    assert not list(tmp_path.glob("ball_*"))


ffmpeg_only = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")


def make_clip(path: Path) -> Path:
    """A one-second, ten-frame test video whose picture changes every frame."""
    argv = ["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi"]
    argv += ["-i", "testsrc=size=64x48:rate=10", "-t", "1", str(path)]
    subprocess.run(argv, check=True, timeout=60)
    return path


@ffmpeg_only
@pytest.mark.parametrize("frames", [[1, 2, 3], [4, 5, 6, 9]])
def test_the_ffmpeg_template_extracts_the_chunks_frames(tmp_path: Path, frames: list[int]) -> None:
    clip = make_clip(tmp_path / "plate «A» 01.mp4")
    out = tmp_path / "out"
    out.mkdir()
    software = from_template("ffmpeg-frames")
    argv = argv_of(software, str(clip), frames, str(out))
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    written = sorted(p.name for p in out.iterdir())
    # The run between the first and last frame; the agent takes the chunk's own frames.
    names = [f"plate «A» 01_{n:04d}.png" for n in range(frames[0], frames[-1] + 1)]
    assert written == names
    # Frame N is the video's Nth frame: testsrc's picture changes every frame.
    pictures = set()
    for n in frames:
        with Image.open(out / f"plate «A» 01_{n:04d}.png") as img:
            pictures.add(img.convert("RGB").tobytes())
    assert len(pictures) == len(frames)


@ffmpeg_only
def test_the_ffmpeg_template_fails_loudly_on_a_percent_in_the_scene_name(tmp_path: Path) -> None:
    """ffmpeg reads % in an output name as its own pattern syntax: the chunk fails with
    ffmpeg's message rather than writing misnamed frames (a limit the docs state)."""
    clip = make_clip(tmp_path / "50% off.mp4")
    out = tmp_path / "out"
    out.mkdir()
    done = subprocess.run(
        argv_of(from_template("ffmpeg-frames"), str(clip), [1, 2], str(out)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "pattern" in done.stderr


@pytest.mark.blender
@blender_only
@pytest.mark.django_db(transaction=True)
def test_a_job_of_software_made_from_the_blender_template_renders(
    project: Any, cluster: Any, storage_root: Path, storage_url: str, render_worker: Any
) -> None:
    software = from_template("blender", image=project.image, name="blender-studio")
    software.full_clean()
    software.save()
    build_demo_scene(storage_root / "scenes" / "ball" / "ball.blend", frames=2)
    [job] = services.submit_render(
        services.RenderRequest(
            project=project,
            software=software,
            cluster=cluster,
            scenes=[storage_url + "scenes/ball/ball.blend"],
            frames="2",
            parameters={"format": "JPEG"},
        )
    )
    job = wait_for(job, timeout=180)
    assert job.state == JobState.FINISHED, job.failure_reason
    frame = job.frame_set.get()
    backend, key = storage.resolve(frame.output_url)
    assert key.endswith("ball_0002.jpg")
    with Image.open(backend.local_path(key)) as img:
        assert img.size == (64, 48)


def test_the_readme_documents_every_template_and_built_in_variable() -> None:
    from renderhub.agent.template import TEMPLATE_VARIABLES

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("## Software templates", 1)[1].split("\n## ", 1)[0]
    assert "each parameter is also a template variable of the same name" in section
    for key in KEYS:
        assert f"(`{key}`)" in section
    for name, help_text in TEMPLATE_VARIABLES.items():
        assert f"| `{{{name}}}` | {help_text} |" in section
