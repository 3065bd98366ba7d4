"""renderhub.blend: a .blend file's facts read without Blender, from files real Blender saved,
and files that are not what their name says; and what this machine's Blender was built with."""

from __future__ import annotations

import gzip
import shutil
import struct
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from renderhub.blend.blender import blender_build
from renderhub.blend.facts import FactsError, SceneFacts, read_scene_facts

from .scene_files import blender_installed, build_scene_files

needs_blender = pytest.mark.skipif(not blender_installed(), reason="blender is not installed")


@pytest.fixture(scope="session")
def blends(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if not blender_installed():
        pytest.skip("blender is not installed")
    return build_scene_files(tmp_path_factory.mktemp("blends"))


@needs_blender
def test_a_scene_with_range_1_250_and_its_render_settings(blends: dict[str, Path]) -> None:
    facts = read_scene_facts(blends["range"])

    assert (facts.version, facts.compressed, facts.current) == (304, False, "Scene")
    assert facts.scenes == (
        SceneFacts(
            name="Scene",
            frame_start=1,
            frame_end=250,
            resolution_x=64,
            resolution_y=48,
            resolution_percent=50,
            engine="CYCLES",
            camera="Camera",
            denoising=True,
        ),
    )
    assert facts.scene() == facts.scene("Scene") == facts.scenes[0]
    assert facts.scenes[0].frame_range == "1-250"


@needs_blender
@pytest.mark.parametrize("name", ["two_scenes", "compressed"])
def test_several_scenes_with_odd_names_and_the_one_rendered_by_default(
    blends: dict[str, Path], name: str
) -> None:
    facts = read_scene_facts(blends[name])

    assert facts.compressed is (name == "compressed")
    assert facts.names == ["Scene", "Shot 02 ünï", "Shot 03 'q'"]
    assert facts.current == "Shot 02 ünï"  # the window's scene when it was saved
    shot = facts.scene()
    assert shot is not None
    assert (shot.name, shot.frame_start, shot.frame_end) == ("Shot 02 ünï", 100, 120)
    assert (shot.resolution_x, shot.resolution_y, shot.denoising) == (20, 10, False)
    third = facts.scene("Shot 03 'q'")
    assert third is not None
    assert (third.engine, third.camera) == ("BLENDER_EEVEE", None)
    assert facts.scene("Shot01") is None
    assert facts.scene("shot 02 ünï") is None  # Blender's -S is case sensitive


@needs_blender
def test_a_gzip_compressed_file_as_blender_2_x_wrote_them(
    blends: dict[str, Path], tmp_path: Path
) -> None:
    packed = tmp_path / "old style.blend"
    packed.write_bytes(gzip.compress(blends["two_scenes"].read_bytes(), compresslevel=1))

    facts = read_scene_facts(packed)

    assert facts.compressed
    assert facts.names == ["Scene", "Shot 02 ünï", "Shot 03 'q'"]


@needs_blender
def test_denoising_follows_blender_defaults_and_view_layers(blends: dict[str, Path]) -> None:
    # Never set: Blender 3.x's default (on) applies, and Debian's Blender fails on it.
    assert read_scene_facts(blends["default_cycles"]).scenes[0].denoising is True
    # On for the scene, off on its only rendered view layer: nothing is denoised.
    assert read_scene_facts(blends["layer_off"]).scenes[0].denoising is False
    assert read_scene_facts(blends["nocam"]).scenes[0].camera is None


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"", "the file is empty"),
        (b"PK\x03\x04 a zip renamed .blend" * 100, "not a .blend file (File is not a blend file)"),
        (b"BLENDER-v304" + b"\0" * 4000, "not a .blend file (No DNA1 block"),
        (gzip.compress(b"just text" * 500), "not a .blend file (Compressed file is not a blend"),
    ],
    ids=["empty", "zip", "header-only", "gzip-of-text"],
)
def test_files_that_are_not_blend_files_say_why(tmp_path: Path, content: bytes, says: str) -> None:
    path = tmp_path / "scène 1.blend"
    path.write_bytes(content)

    with pytest.raises(FactsError) as exc:
        read_scene_facts(path)

    assert str(exc.value).startswith(says)


def test_a_missing_file_and_a_file_over_the_limit(tmp_path: Path) -> None:
    with pytest.raises(FactsError, match="cannot open it: No such file or directory"):
        read_scene_facts(tmp_path / "gone.blend")
    big = tmp_path / "big.blend"
    big.write_bytes(b"BLENDER-v304" + b"\0" * 5000)
    with pytest.raises(FactsError, match="it is 5012 bytes, over the 4096 bytes the reader"):
        read_scene_facts(big, max_bytes=4096)


def test_a_decompression_bomb_stops_at_the_size_limit(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.blend"
    bomb.write_bytes(gzip.compress(b"BLENDER-v304" + b"\0" * (64 << 20)))
    assert bomb.stat().st_size < 100_000
    scratch = Path(tempfile.gettempdir())
    before = set(scratch.glob("renderhub-blend-*"))

    with pytest.raises(FactsError, match="it unpacks to more than 8 MiB"):
        read_scene_facts(bomb, max_bytes=8 << 20)
    assert set(scratch.glob("renderhub-blend-*")) <= before, "the partial copy is removed"


def hostile_file(path: Path) -> Path:
    """A header and a DNA1 block claiming 4 billion names: the reader loops and grows."""
    dna = b"SDNA" + b"NAME" + struct.pack("<I", 0xFFFFFFFF) + b"a\0"
    block = b"DNA1" + struct.pack("<IQII", len(dna), 0x1000, 0, 1) + dna
    path.write_bytes(b"BLENDER-v304" + block + b"ENDB" + b"\0" * 2000)
    return path


def test_a_hostile_file_is_stopped_by_the_memory_cap(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(FactsError, match="needed more memory than the reader may use"):
        read_scene_facts(hostile_file(tmp_path / "h.blend"), max_memory=150 << 20, timeout=60)
    assert time.monotonic() - started < 30


def test_a_hostile_file_is_stopped_by_the_timeout(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(FactsError, match=r"reading it took longer than 1\.5 s"):
        read_scene_facts(hostile_file(tmp_path / "h.blend"), max_memory=500 << 20, timeout=1.5)
    assert time.monotonic() - started < 10


@needs_blender
def test_this_machines_blender_says_whether_it_has_openimagedenoise() -> None:
    build = blender_build("blender")
    assert build is not None
    version = subprocess.run(
        ["blender", "--version"], capture_output=True, text=True, check=True
    ).stdout.split()[1]
    assert (build.path, build.version) == (shutil.which("blender"), version)
    assert build.openimagedenoise in (True, False)
    assert blender_build("blender") is build  # asked once per process
    assert blender_build("no-such-blender-3.9") is None
