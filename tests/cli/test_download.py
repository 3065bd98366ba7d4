from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from django.core.management.base import CommandError

from renderhub.storage import Entry


@pytest.fixture
def outputs(storage_root: Path) -> str:
    for name in ("frame_0001.png", "frame_0002.png", "_logs/task-0/agent.log"):
        path = storage_root / "out" / "12-shot" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"p" * 1500)
    return storage_root.as_uri() + "/out/12-shot/"


def test_it_downloads_a_folder_keeping_its_layout(run: Any, outputs: str, tmp_path: Path) -> None:
    target = tmp_path / "dl"

    out = run("download", outputs, str(target)).out

    files = sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())
    assert files == ["_logs/task-0/agent.log", "frame_0001.png", "frame_0002.png"]
    assert "] 4.4 KB/4.4 KB  0:00 elapsed\n" in out
    assert out.endswith(f"Downloaded 3 files (4.4 KB) to {target}\n")


def test_it_downloads_a_single_file_into_the_folder(run: Any, outputs: str, tmp_path: Path) -> None:
    run("download", outputs + "frame_0002.png", str(tmp_path / "dl"))
    assert [p.name for p in (tmp_path / "dl").iterdir()] == ["frame_0002.png"]


def test_it_refuses_to_write_outside_the_folder(
    run: Any, outputs: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from renderhub.storage.local import LocalStorage

    # An object store may hold a name our keys never would; walk() pretends to list one.
    evil = Entry(key="out/12-shot/../../escape.txt", is_dir=False, size=1, modified=datetime.now())
    monkeypatch.setattr(LocalStorage, "walk", lambda self, prefix="": iter([evil]))

    with pytest.raises(CommandError, match=r"Refusing to write .*escape\.txt.* outside"):
        run("download", outputs, str(tmp_path / "dl"))
    assert not (tmp_path / "escape.txt").exists()
    assert not (tmp_path / "dl").exists()


def test_it_reports_mistakes_without_a_traceback(
    run: Any, outputs: str, tmp_path: Path, storage_root: Path
) -> None:
    with pytest.raises(CommandError, match="Nothing to download at"):
        run("download", storage_root.as_uri() + "/nothing/", str(tmp_path / "dl"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(CommandError, match="file is not a folder"):
        run("download", outputs, str(tmp_path / "file"))
    with pytest.raises(CommandError, match=r"Download failed: .* is not a storage URL"):
        run("download", "out/", str(tmp_path / "dl"))
