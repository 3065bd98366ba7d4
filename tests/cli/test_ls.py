from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.management.base import CommandError

from jobs.management.commands import ls as command


@pytest.fixture
def tree(storage_root: Path) -> str:
    for name, size in [("b.png", 10), ("a.exr", 2048), ("shots/s1.blend", 3), ("maps/m.png", 1)]:
        path = storage_root / "proj" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * size)
    return storage_root.as_uri() + "/proj/"


def names(out: str) -> list[str]:
    return [line.split()[-1] for line in out.splitlines()[1:-1]]


def test_it_lists_folders_first_then_files_with_sizes(run: Any, tree: str) -> None:
    out = run("ls", tree).out

    assert names(out) == ["maps/", "shots/", "a.exr", "b.png"]
    lines = out.splitlines()
    assert lines[0].split() == ["SIZE", "MODIFIED", "NAME"]
    assert lines[1].strip() == "maps/"
    assert lines[3].split()[:2] == ["2.0", "KB"]
    assert lines[4].split()[:2] == ["10", "B"]
    assert lines[-1] == "2 folders, 2 files (2.0 KB)"


def test_it_lists_recursively(run: Any, tree: str) -> None:
    out = run("ls", tree.rstrip("/"), "--recursive").out
    assert names(out) == ["a.exr", "b.png", "maps/m.png", "shots/s1.blend"]
    assert out.endswith("0 folders, 4 files (2.0 KB)\n")


def test_it_pages_through_everything_and_honours_limit(
    run: Any, tree: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(command, "PAGE_SIZE", 1)

    assert names(run("ls", tree, "-r").out) == ["a.exr", "b.png", "maps/m.png", "shots/s1.blend"]
    out = run("ls", tree, "-r", "--limit", "3").out
    assert names(out) == ["a.exr", "b.png", "maps/m.png"]
    assert out.endswith("3 files (2.0 KB); more entries follow, raise --limit to see them\n")


def test_it_shows_a_single_file(run: Any, tree: str) -> None:
    out = run("ls", tree + "a.exr").out
    assert names(out) == ["a.exr"]


def test_it_says_when_nothing_is_there(run: Any, tree: str) -> None:
    assert run("ls", tree + "nothing/").out == f"Nothing under {tree}nothing/\n"


def test_it_reports_bad_urls_without_a_traceback(run: Any, storage_root: Path) -> None:
    with pytest.raises(CommandError, match="is outside the local storage root"):
        run("ls", "file:///etc/")
    with pytest.raises(CommandError, match="is not a storage URL"):
        run("ls", "proj/")
    with pytest.raises(CommandError, match=r"must not contain '\.\.'"):
        run("ls", storage_root.as_uri() + "/proj/../../")
    with pytest.raises(CommandError, match="--limit must be at least 1"):
        run("ls", storage_root.as_uri() + "/", "--limit", "0")
