from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.management.base import CommandError

# upload reads the project mappings (a scene's artists' paths) and the unfinished jobs' files.
pytestmark = pytest.mark.django_db


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "local"
    (root / "tex" / "wood").mkdir(parents=True)
    (root / "scene.blend").write_bytes(b"s" * 100)
    (root / "tex" / "wood" / "oak.png").write_bytes(b"o" * 3000)
    return root


def test_it_uploads_a_folder_keeping_its_layout(run: Any, folder: Path, storage_root: Path) -> None:
    url = storage_root.as_uri() + "/up/shot"

    out = run("upload", str(folder), url).out

    assert (storage_root / "up/shot/scene.blend").read_bytes() == b"s" * 100
    assert (storage_root / "up/shot/tex/wood/oak.png").read_bytes() == b"o" * 3000
    assert "] 3.0 KB/3.0 KB  0:00 elapsed\n" in out  # the final progress line (not a TTY)
    assert "\r" not in out
    assert out.endswith(f"Uploaded 2 files (3.0 KB) to {url}\n")


def test_it_uploads_a_single_file(run: Any, folder: Path, storage_root: Path) -> None:
    root = storage_root.as_uri()
    run("upload", str(folder / "scene.blend"), root + "/in/")
    run("upload", str(folder / "scene.blend"), root + "/in/renamed.blend")
    assert (storage_root / "in/scene.blend").exists()
    assert (storage_root / "in/renamed.blend").exists()


def test_it_reports_mistakes_without_a_traceback(
    run: Any, folder: Path, storage_root: Path, tmp_path: Path
) -> None:
    with pytest.raises(CommandError, match="missing does not exist"):
        run("upload", str(tmp_path / "missing"), storage_root.as_uri() + "/x/")
    with pytest.raises(CommandError, match=r"Upload failed: .* is outside the local storage root"):
        run("upload", str(folder), "file:///etc/x/")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CommandError, match="empty has no files to upload"):
        run("upload", str(tmp_path / "empty"), storage_root.as_uri() + "/x/")


def test_it_stops_cleanly_on_ctrl_c(
    run: Any, folder: Path, storage_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from renderhub.storage.local import LocalStorage

    real = LocalStorage.upload_file

    def upload_then_interrupt(self: Any, path: Path, key: str, progress: Any = None) -> None:
        if path.name == "oak.png":
            raise KeyboardInterrupt
        real(self, path, key, progress)

    monkeypatch.setattr(LocalStorage, "upload_file", upload_then_interrupt)
    with pytest.raises(CommandError, match="Interrupted after copying 1 of 2 files") as exc:
        run("upload", str(folder), storage_root.as_uri() + "/up/")
    assert exc.value.returncode == 130
    assert (storage_root / "up/scene.blend").exists()
