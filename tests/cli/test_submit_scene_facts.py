"""submit_render checks the scene's facts: refusals with the --force hint, warnings on stderr,
and a local scene checked before it is uploaded. Scenes are saved by real Blender."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.management.base import CommandError

from jobs import scene_checks
from jobs.models import RenderJob
from renderhub.blend.blender import BlenderBuild
from tests.jobs.scene_files import blender_installed, build_scene_files

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(not blender_installed(), reason="blender is not installed"),
]


@pytest.fixture(scope="session")
def blends(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_scene_files(tmp_path_factory.mktemp("blends"))


@pytest.fixture(autouse=True)
def blender_without_oidn(monkeypatch: pytest.MonkeyPatch) -> None:
    build = BlenderBuild(path="/usr/bin/blender", version="3.4.1", openimagedenoise=False)
    monkeypatch.setattr(scene_checks, "blender_build", lambda executable: build)


@pytest.fixture
def range_url(project: Any, blends: dict[str, Path], storage_root: Path, storage_url: str) -> str:
    """range.blend (frames 1-250, denoising on) in the project's mapped folder."""
    (storage_root / "scenes").mkdir(exist_ok=True)
    shutil.copy(blends["range"], storage_root / "scenes" / "range.blend")
    return storage_url + "scenes/range.blend"


def args(scene: str, frames: str, *extra: str) -> list[str]:
    return ["submit_render", "--project", "shots", "--scene", scene, "--frames", frames, *extra]


def test_frames_outside_the_range_are_refused_with_the_force_hint(
    run: Callable[..., Any], range_url: str
) -> None:
    with pytest.raises(CommandError) as exc:
        run(*args(range_url, "300-302"))

    assert str(exc.value).splitlines() == [
        "The submission was refused:",
        "  frames: range.blend: scene 'Scene': all frames 300-302 outside its frame range "
        "1-250. Choose frames in the range, or render them anyway (Blender renders the "
        "animation as it stands at those frames).",
        "  (--force renders frames outside the scene's range anyway.)",
    ]
    assert not RenderJob.objects.exists()


def test_force_submits_and_the_warnings_go_to_stderr(
    run: Callable[..., Any], range_url: str
) -> None:
    result = run(*args(range_url, "300-302", "--force"))

    job = RenderJob.objects.get()
    assert result.out == f"#{job.pk} range  3 frames in 2 chunks  -> {job.output_url}\n"
    warnings = result.err.splitlines()
    assert warnings[0] == (
        "warning: range.blend: scene 'Scene': all frames 300-302 outside its frame range "
        "1-250; Blender renders them anyway."
    )
    assert warnings[1].startswith(
        "warning: range.blend: scene 'Scene' has Cycles denoising on, but this machine's "
        "Blender 3.4.1 is built without OpenImageDenoise"
    )
    assert len(warnings) == 2


def test_a_local_scene_is_checked_before_it_is_uploaded(
    run: Callable[..., Any],
    project: Any,
    blends: dict[str, Path],
    tmp_path: Path,
    storage_root: Path,
) -> None:
    folder = tmp_path / "shot ünï 9"
    folder.mkdir()
    shutil.copy(blends["two_scenes"], folder / "two scenes.blend")

    with pytest.raises(CommandError) as exc:
        run(*args(str(folder / "two scenes.blend"), "1-3"))

    assert "scene 'Shot 02 ünï': all frames 1-3 outside its frame range 100-120" in str(exc.value)
    assert "--force" in str(exc.value)
    assert not (storage_root / "scenes" / "uploads").exists(), "refused before uploading"

    result = run(*args(str(folder / "two scenes.blend"), "100-101"))
    # Uploaded into a folder of its own (uploads/<time>-<random>/<the scene's folder>/).
    [folder] = (storage_root / "scenes" / "uploads").glob("*/shot ünï 9")
    assert (folder / "two scenes.blend").is_file()
    assert result.err == ""
