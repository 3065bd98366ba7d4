"""A frame's outputs are the files in the output folder, taken over before they are checked."""

from __future__ import annotations

import io
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from renderhub.agent import outputs
from renderhub.agent.outputs import OutputFolder, check_content


def png(colour: tuple[int, int, int] = (10, 20, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 6), colour).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[tuple[OutputFolder, Path, Path]]:
    out, verified = tmp_path / "out", tmp_path / "verified"
    out.mkdir()
    taken = OutputFolder(str(out), "shot_####", str(verified))
    yield taken, out, verified
    taken.close()


def test_a_frame_file_is_moved_out_of_the_renderers_folder(folder) -> None:
    taken, out, verified = folder
    (out / "shot_0007.png").write_bytes(png())
    (out / "shot_0007.exr").write_bytes(outputs.EXR_MAGIC + b"rest of the header")
    (out / "shot_0008.png").write_bytes(png())  # another frame: left alone
    (out / "shot_07.png").write_bytes(png())  # wrong padding: not frame 7's name
    found = taken.collect(7)
    assert [p.name for p in found.paths] == ["shot_0007.exr", "shot_0007.png"]
    assert all(p.parent == verified for p in found.paths) and not found.problems
    assert sorted(p.name for p in out.iterdir()) == ["shot_0008.png", "shot_07.png"]


def test_a_symlink_named_like_a_frame_is_refused(folder, tmp_path: Path) -> None:
    taken, out, verified = folder
    secret = tmp_path / "secret_key"
    secret.write_text("s3cret")
    (out / "shot_0001.png").symlink_to(secret)
    found = taken.collect(1)
    assert found.paths == []
    assert found.problems == ["shot_0001.png: a symbolic link, not a file"]
    assert list(verified.iterdir()) == [] and secret.read_text() == "s3cret"


def test_a_hard_link_to_another_file_is_refused(folder, tmp_path: Path) -> None:
    taken, out, _verified = folder
    secret = tmp_path / "secret.png"
    secret.write_bytes(png())
    os.link(secret, out / "shot_0001.png")
    found = taken.collect(1)
    assert found.paths == [] and found.problems == ["shot_0001.png: a hard link to another file"]
    assert secret.exists()


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("shot_0001.png", b"", "the file is empty"),
        ("shot_0001.png", png()[:-30], "the image does not decode"),
        ("shot_0001.jpg", b"\xff\xd8\xff not really", "the image does not decode"),
        ("shot_0001.exr", b"PK\x03\x04 a zip", "not an OpenEXR file"),
    ],
)
def test_empty_truncated_or_fake_images_are_refused(
    folder, name: str, content: bytes, problem: str
) -> None:
    taken, out, verified = folder
    (out / name).write_bytes(content)
    found = taken.collect(1)
    assert found.paths == []
    assert found.problems[0].startswith(f"{name}: {problem}")
    assert list(verified.iterdir()) == []  # refused files are not kept


def test_a_folder_or_fifo_named_like_a_frame_is_refused(folder) -> None:
    taken, out, _verified = folder
    (out / "shot_0001.png").mkdir()
    (out / "shot_0001.png" / "inner").write_text("x")
    os.mkfifo(out / "shot_0002.png")
    assert taken.collect(1).problems == ["shot_0001.png: not a regular file"]
    assert taken.collect(2).problems == ["shot_0002.png: not a regular file"]


def test_replacing_the_output_folder_later_changes_nothing(folder, tmp_path: Path) -> None:
    """The folder is read through the descriptor opened at the start."""
    taken, out, _verified = folder
    (out / "shot_0001.png").write_bytes(png())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "shot_0002.png").write_bytes(png())
    out.rename(tmp_path / "moved")
    out.symlink_to(elsewhere)
    assert [p.name for p in taken.collect(1).paths] == ["shot_0001.png"]
    assert taken.collect(2).paths == []
    assert (elsewhere / "shot_0002.png").exists()


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="needs a second file system")
def test_across_file_systems_the_file_is_copied_too(tmp_path: Path) -> None:
    shm = Path("/dev/shm") / f"rh-out-{os.getpid()}"  # tmpfs: a rename to /tmp is EXDEV
    shm.mkdir()
    try:
        (shm / "shot_0001.png").write_bytes(png((1, 2, 3)))
        (shm / "shot_0002.png").symlink_to(tmp_path)
        taken = OutputFolder(str(shm), "shot_####", str(tmp_path / "verified"))
        try:
            [path] = taken.collect(1).paths
            assert path == tmp_path / "verified" / "shot_0001.png"
            assert Image.open(path).getpixel((0, 0)) == (1, 2, 3)
            assert not (shm / "shot_0001.png").exists()
            # O_NOFOLLOW: the link is never followed, whatever it points at.
            assert taken.collect(2).problems == ["shot_0002.png: a symbolic link, not a file"]
        finally:
            taken.close()
    finally:
        shutil.rmtree(shm)


def test_without_pillow_a_png_is_checked_chunk_by_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bare BatchCompute nodes have no Pillow: the standard-library PNG check still holds."""
    good, cut, flipped = tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.png"
    good.write_bytes(png())
    cut.write_bytes(png()[:-20])
    data = bytearray(png())
    data[40] ^= 0xFF  # a byte inside a chunk: its CRC no longer matches
    flipped.write_bytes(bytes(data))
    monkeypatch.setitem(sys.modules, "PIL", None)  # import PIL now raises ImportError
    assert check_content(good) is None
    assert check_content(cut) == "the PNG is truncated"
    assert "is corrupt" in (check_content(flipped) or "")


def test_a_file_rewritten_after_the_check_does_not_change_the_frame(folder) -> None:
    """The renderer may keep its frame open: what was checked is a copy it cannot reach."""
    taken, out, _verified = folder
    held = open(out / "shot_0001.png", "w+b")  # noqa: SIM115 (held open on purpose)
    held.write(png((9, 9, 9)))
    held.flush()
    [path] = taken.collect(1).paths
    held.seek(0)
    held.truncate()
    held.write(b"<html><script>alert(1)</script></html>")
    held.close()
    assert Image.open(path).getpixel((0, 0)) == (9, 9, 9)


def test_only_image_movie_and_cache_formats_count(folder) -> None:
    taken, out, _verified = folder
    (out / "shot_0001.png").write_bytes(png())
    (out / "shot_0001.html").write_text("<script>alert(1)</script>")
    (out / "shot_0001.svg").write_text("<svg onload='alert(1)'/>")
    found = taken.collect(1)
    assert [p.name for p in found.paths] == ["shot_0001.png"]
    assert sorted(found.problems) == [
        "shot_0001.html: .html is not an image, movie or cache format",
        "shot_0001.svg: .svg is not an image, movie or cache format",
    ]


def test_the_suffix_picks_the_decoder(folder) -> None:
    """PostScript named .png is not a PNG (and never reaches Ghostscript)."""
    taken, out, _verified = folder
    (out / "shot_0001.png").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n")
    [problem] = taken.collect(1).problems
    assert problem.startswith("shot_0001.png: the image does not decode")


def test_a_frame_has_a_bounded_number_of_files(folder) -> None:
    taken, out, _verified = folder
    for i in range(outputs.MAX_FILES_PER_FRAME + 5):
        (out / f"shot_0001.{i:02d}.png").write_bytes(png())
    found = taken.collect(1)
    assert len(found.paths) == outputs.MAX_FILES_PER_FRAME
    assert len(found.problems) == 5
